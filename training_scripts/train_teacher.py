"""Fine-tune an XLS-R teacher (XLSRForMOSRegression) on MOS corpora, in full or with LoRA.

    accelerate launch --config_file training_scripts/accelerate/single_gpu.yaml \
        training_scripts/train_teacher.py --config training_scripts/configs/teacher_xlsr300m.yaml [--resume]
"""

from hf_sqa.training.recipe import recipe_main

if __name__ == "__main__":
    recipe_main("teacher")
