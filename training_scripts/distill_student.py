"""Distil a ConvTransformer student from a teacher (online or pseudo-labelled) and human MOS.

    python training_scripts/distill_student.py --config training_scripts/configs/distill_cpu_small.yaml
    accelerate launch --config_file training_scripts/accelerate/multi_gpu.yaml \
        training_scripts/distill_student.py --config RECIPE.yaml [--resume] [--set training.max_steps=2000]
"""

from hf_sqa.training.recipe import recipe_main

if __name__ == "__main__":
    recipe_main("student")
