import torch
from transformers import AutoModel

from hf_sqa.models import XLSRForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_xlsr_config
from hf_sqa.training.teacher import add_lora, merge_lora


def test_lora_wraps_trains_merges_and_reloads(tmp_path):
    torch.manual_seed(0)
    teacher = XLSRForMOSRegression(tiny_xlsr_config(feature_layers=[1, 2], layer_fusion="fusion"))
    original = {k: v.clone() for k, v in teacher.state_dict().items()}
    peft_model = add_lora(teacher, rank=4)

    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    lora = {name for name in trainable if "lora_" in name}
    assert len(lora) == 2 * 4 * 2  # A and B for q, k, v, out in both built layers
    assert all(".attention." in name for name in lora)
    assert any(".head." in n for n in trainable) and any(".layer_fusion." in n for n in trainable)
    assert not any("feature_extractor" in n or ("lora_" not in n and ".wav2vec2." in n) for n in trainable)

    audio = torch.stack([torch.from_numpy(synthetic_speech(2.0, seed=s, noise_db=db)) for s, db in ((1, None), (2, 0))])
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    peft_model.train()
    losses = []
    for _ in range(5):
        loss = peft_model(input_values=audio, labels=torch.tensor([4.5, 1.5])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_values=audio).mos
    merged = merge_lora(peft_model)
    assert isinstance(merged, XLSRForMOSRegression)
    assert not any("lora_" in k for k in merged.state_dict())
    q_proj = "wav2vec2.encoder.layers.0.attention.q_proj.weight"
    assert not torch.equal(merged.state_dict()[q_proj], original[q_proj])  # the LoRA update is in the weights
    feature = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(merged.state_dict()[feature], original[feature])  # frozen parts untouched
    with torch.no_grad():
        assert torch.allclose(merged(audio).mos, adapted, atol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModel.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(audio).mos, adapted, atol=1e-5)
