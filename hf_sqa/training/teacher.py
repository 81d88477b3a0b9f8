"""Teacher fine-tuning helpers: LoRA on the wav2vec 2.0 backbone's attention projections (peft).

Only the backbone gets adapters (its q/k/v/out projections); the layer fusion and the MOS head are small
and train in full. `merge_lora` folds the adapters into the weights and returns a plain
`XLSRForMOSRegression`, which saves as an ordinary checkpoint (no peft needed to load it).
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model

from ..models import XLSRForMOSRegression

# full module names, matched with re.fullmatch by peft; the head's own attention (also "out_proj") is not
BACKBONE_ATTENTION = r".*wav2vec2\.encoder\.layers\.\d+\.attention\.(q_proj|k_proj|v_proj|out_proj)"
FULLY_TRAINED = ("layer_fusion.", "head.")


def add_lora(model: XLSRForMOSRegression, rank: int = 8, alpha: int = 16, dropout: float = 0.0) -> PeftModel:
    """Wrap a teacher for LoRA fine-tuning: backbone frozen except the adapters, fusion and head trainable."""
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=BACKBONE_ATTENTION)
    peft_model = get_peft_model(model, config)
    for name, parameter in peft_model.base_model.model.named_parameters():
        if name.startswith(FULLY_TRAINED):
            parameter.requires_grad = True
    return peft_model


def merge_lora(peft_model: PeftModel) -> XLSRForMOSRegression:
    """The teacher with the LoRA updates merged into its weights, adapters removed."""
    return peft_model.merge_and_unload()
