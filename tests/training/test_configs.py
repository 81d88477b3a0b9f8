from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file

from hf_sqa.training.recipe import load_recipe

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"


@pytest.mark.parametrize("name, processes, machines", [("single_gpu", 1, 1), ("multi_gpu", 8, 1), ("multi_node", 16, 2)])
def test_accelerate_configs_parse(name, processes, machines):
    config = load_config_from_file(str(SCRIPTS / "accelerate" / f"{name}.yaml"))
    assert config.num_processes == processes and config.num_machines == machines
    assert str(config.mixed_precision) in ("bf16", "PrecisionType.BF16")


@pytest.mark.parametrize("name", sorted(p.name for p in (SCRIPTS / "configs").glob("*.yaml")))
def test_recipes_name_a_model_and_data(name):
    recipe = load_recipe(SCRIPTS / "configs" / name, {"training.max_steps": 1})
    assert recipe["model"]["kind"] in ("student", "teacher")
    assert recipe.get("labelled") or recipe.get("unlabelled")
    assert recipe["training"]["max_steps"] == 1
    yaml.safe_dump(recipe)
