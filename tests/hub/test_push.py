"""`hf-sqa push`: the dry-run folder, loading it without hf_sqa, and the upload calls (Hub mocked)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import EntryNotFoundError

import hf_sqa
from hf_sqa.cli import main
from hf_sqa.hub import push as push_module
from hf_sqa.hub import push_checkpoint
from hf_sqa.testing import score_without_hf_sqa, synthetic_speech

CHECKPOINT_FILES = {"config.json", "model.safetensors", "README.md", "attention.py", "configuration_mos.py",
                    "configuration_conv_transformer_mos.py", "head.py", "modeling_conv_transformer_mos.py",
                    "modeling_mos.py", "windowing.py", "preprocessor_config.json", "feature_extraction_mos.py",
                    "audio_arrays.py"}


@pytest.fixture
def eval_report(tmp_path, tiny_checkpoint):
    report = {"corpus_a": {str(tiny_checkpoint): {"n": 20, "pcc": 0.5, "srcc": 0.4, "ktau": 0.3, "rmse": 0.7}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_dry_run_writes_exactly_the_upload_and_loads_without_hf_sqa(tiny_checkpoint, eval_report, tmp_path, capsys):
    out = tmp_path / "dry"
    code = main(["push", str(tiny_checkpoint), "me/tiny-student", "--dry-run", "--output-dir", str(out),
                 "--eval-report", str(eval_report), "--dataset-id", "corpus_a=someone/corpus-a"])
    assert code == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == CHECKPOINT_FILES | {"eval_report.json", ".eval_results/corpus_a.yaml"}
    printed = capsys.readouterr().out
    assert f"{len(files)} files written to {out}" in printed
    assert "model-index" in (out / "README.md").read_text()

    audio = np.stack([synthetic_speech(4.0, seed=5), synthetic_speech(4.0, seed=6)])
    with torch.no_grad():
        expected = hf_sqa.load_model(str(tiny_checkpoint))(torch.from_numpy(audio)).mos.numpy()
    result = score_without_hf_sqa(out, audio, tmp_path)
    assert result["class"] == "ConvTransformerForMOSRegression"
    np.testing.assert_allclose(result["mos"], expected, atol=1e-6)


class FakeHubApi:
    """Records the calls `push` makes and the files of the folder it uploads."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
        self.calls.append(("create_repo", repo_id, private, exist_ok))

    def create_branch(self, repo_id, branch, exist_ok=False, repo_type=None):
        self.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, revision=None, repo_type=None, commit_message=None):
        from pathlib import Path

        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", repo_id, revision, files))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


def test_push_uploads_what_the_dry_run_shows(tiny_checkpoint, eval_report, tmp_path, monkeypatch):
    FakeHubApi.calls = []
    monkeypatch.setattr(push_module, "HfApi", FakeHubApi)
    dry = push_checkpoint(tiny_checkpoint, "me/tiny", dry_run_dir=tmp_path / "dry", eval_report=eval_report)
    result = push_checkpoint(tiny_checkpoint, "me/tiny", private=True, revision="v1", token="hf_x",
                             eval_report=eval_report)
    assert result["commit_url"] == "https://huggingface.co/me/tiny/commit/abc"
    assert FakeHubApi.calls[0] == ("init", "hf_x")
    assert ("create_repo", "me/tiny", True, True) in FakeHubApi.calls
    assert ("create_branch", "me/tiny", "v1") in FakeHubApi.calls
    upload = next(call for call in FakeHubApi.calls if call[0] == "upload_folder")
    assert upload[1:3] == ("me/tiny", "v1")
    assert upload[3] == dry["files"] == result["files"]


def test_push_refusals(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match="not of the form owner/name"):
        push_checkpoint(tiny_checkpoint, "just-a-name", dry_run_dir=tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something.txt").write_text("x")
    with pytest.raises(FileExistsError, match="must be new or empty"):
        push_checkpoint(tiny_checkpoint, "me/x", dry_run_dir=tmp_path / "full")
    assert main(["push", str(tiny_checkpoint), "me/x", "--dry-run"]) == 2
    assert "--dry-run needs --output-dir" in capsys.readouterr().err
    assert main(["push", str(tiny_checkpoint), "me/x", "--dry-run", "--output-dir", str(tmp_path / "y"),
                 "--dataset-id", "corpus_a"]) == 2
    assert "CORPUS=OWNER/NAME" in capsys.readouterr().err


def test_a_model_object_pushes_like_its_folder(tiny_checkpoint, tmp_path):
    model = hf_sqa.load_model(str(tiny_checkpoint))
    from_object = push_checkpoint(model, "me/tiny", dry_run_dir=tmp_path / "a")
    from_folder = push_checkpoint(tiny_checkpoint, "me/tiny", dry_run_dir=tmp_path / "b")
    assert from_object["files"] == from_folder["files"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_model_push_to_hub_uploads_weights_config_and_flat_code(tiny_checkpoint, monkeypatch):
    """transformers' push_to_hub on an hf_sqa model (Hub calls faked): the upload carries the remote code."""
    import transformers.utils.hub as transformers_hub

    uploaded = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def create_commit(self, repo_id, operations, **kwargs):
            for operation in operations:
                uploaded[operation.path_in_repo] = Path(operation.path_or_fileobj).read_bytes()
            return type("Commit", (), {"commit_url": "https://huggingface.co/me/tiny/commit/1"})()

    def no_card_yet(repo_id, **kwargs):  # a new repo; offline, the real call retries for ~20 s first
        raise EntryNotFoundError(f"{repo_id} has no README.md yet")

    monkeypatch.setattr(transformers_hub, "hf_api", lambda: FakeApi())
    monkeypatch.setattr(transformers_hub.ModelCard, "load", no_card_yet)
    hf_sqa.load_model(str(tiny_checkpoint)).push_to_hub("me/tiny")
    assert CHECKPOINT_FILES - {"README.md"} <= set(uploaded)
    config = json.loads(uploaded["config.json"])
    assert config["auto_map"]["AutoModel"].endswith("ConvTransformerForMOSRegression")
