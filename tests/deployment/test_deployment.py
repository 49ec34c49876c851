"""Deployment settings and logins: what a browser user may reach (issue #17)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from lrclr.bundled import BASELINE_MODEL_DIR
from lrclr.deployment.settings import DeploymentSettingsError, FolderNotAllowedError, load_settings
from lrclr.errors import LRCLRError
from lrclr.deployment.logins import Credentials, CredentialsError, add_user, hash_password, verify_password
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.app_pages import deployment_settings
from tests.support.paths import REPO_ROOT


@pytest.fixture
def roots(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "studies" / ".git").mkdir(parents=True)
    (allowed / "studies" / "a.png").write_bytes(b"x")
    (allowed / "studies" / ".git" / "HEAD").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (allowed / "studies" / "link-out").symlink_to(tmp_path / "outside")
    return allowed


def test_the_defaults_read_no_server_folder_and_offer_the_bundled_models(monkeypatch):
    monkeypatch.delenv("LRCLR_SETTINGS", raising=False)
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    settings = load_settings()
    assert settings.batch_roots == () and not settings.login_required
    assert [m.folder for m in settings.models] == [DEFAULT_MODEL_DIR, BASELINE_MODEL_DIR]
    with pytest.raises(FolderNotAllowedError, match="does not let the Batch page read server folders"):
        settings.batch_folder(str(REPO_ROOT))
    with pytest.raises(LRCLRError, match="not one of this deployment's models"):
        settings.model_folder("/etc")


def test_allowed_roots_refuse_escapes_without_saying_whether_they_exist(tmp_path, roots, monkeypatch):
    deployment_settings(monkeypatch, tmp_path, f'[batch]\nserver_folders = ["{roots}"]\n')
    settings = load_settings()
    assert settings.batch_folder(str(roots / "studies")) == roots / "studies"
    assert settings.batch_folder("studies") == roots / "studies"  # relative to the first root
    messages = set()
    for typed in ("/etc", "/no/such/folder", str(roots / ".." / "outside"), "../outside", "studies/../../outside",
                  str(roots / "studies" / "link-out"), str(roots / "studies" / ".git"), "", "/etc/passwd\x00"):
        with pytest.raises(FolderNotAllowedError) as refused:
            settings.batch_folder(typed)
        messages.add(str(refused.value))
    assert len(messages) == 1 and "/etc" not in messages.pop().replace(str(roots), "")
    # A walk keeps to what the settings allow: hidden folders and links out are skipped.
    assert settings.allows_file(roots / "studies" / "a.png")
    assert not settings.allows_file(roots / "studies" / ".git" / "HEAD")


def test_a_broken_settings_file_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    deployment_settings(monkeypatch, tmp_path, "[batch]\nserver_folders = 'not a list'\n")
    with pytest.raises(DeploymentSettingsError, match="must be a list"):
        load_settings()
    deployment_settings(monkeypatch, tmp_path, "not toml [")
    with pytest.raises(DeploymentSettingsError, match="cannot be read"):
        load_settings()


def test_the_flag_store_is_a_folder_or_one_postgresql_url_checked_on_loading(tmp_path, monkeypatch):
    url = "postgresql://lrclr@db.example.org:5432/lrclr_flags"
    deployment_settings(monkeypatch, tmp_path, f'[flag_store]\nurl = "{url}"\n')
    assert load_settings().flag_store_url == url
    secret = "hunter2-not-for-logs"
    deployment_settings(monkeypatch, tmp_path, f'[flag_store]\nurl = "{url.replace("lrclr@", f"lrclr:{secret}@")}"\n')
    assert secret not in repr(load_settings())  # a repr ends up in logs and tracebacks
    for text, message in [
        (f'[flag_store]\nfolder = "flags"\nurl = "{url}"\n', "gives both folder and url"),
        (f'[flag_store]\nURL = "{url}"\n', "has no key URL"),  # else each replica would use its own file
        (f'[flag_store]\nurl = "mysql://reader:{secret}@db/flags"\n', "not a PostgreSQL URL"),
        (f'[flag_store]\nurl = "postgresql://reader:{secret}@db.example.org"\n', "names no database"),
        ("[flag_store]\nurl = 5432\n", "not a PostgreSQL URL"),
    ]:
        deployment_settings(monkeypatch, tmp_path, text)
        with pytest.raises(DeploymentSettingsError, match=message) as caught:
            load_settings()
        assert secret not in str(caught.value) and "deployment.toml" in str(caught.value)


def test_passwords_are_scrypt_hashes_checked_in_constant_form(tmp_path):
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password(stored, "correct horse") and not verify_password(stored, "correct horsE")
    assert not verify_password("plain-text", "plain-text")
    path = tmp_path / "users.toml"
    add_user(path, "dr_carol", "admin", "correct horse")
    add_user(path, "ann", "annotator", "battery staple")
    credentials = Credentials.load(path)
    assert credentials.authenticate("dr_carol", "correct horse").is_admin
    assert credentials.authenticate("ann", "battery staple").role == "annotator"
    assert credentials.authenticate("ann", "correct horse") is None
    assert credentials.authenticate("nobody", "correct horse") is None
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(CredentialsError, match="a user name is"):
        add_user(path, "<b>x</b>", "admin", "long enough")


def test_add_user_reads_the_password_from_stdin_and_never_prompts(tmp_path):
    path = tmp_path / "users.toml"
    result = subprocess.run([sys.executable, "-m", "lrclr", "add-user", str(path), "dr_carol", "--role", "admin",
                             "--password-stdin"], input="correct horse\n", capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Credentials.load(path).authenticate("dr_carol", "correct horse") is not None


def _login_app(monkeypatch, tmp_path) -> AppTest:
    credentials = tmp_path / "users.toml"
    add_user(credentials, "dr_carol", "admin", "correct horse")
    add_user(credentials, "ann", "annotator", "battery staple")
    deployment_settings(monkeypatch, tmp_path, f'[auth]\ncredentials = "{credentials}"\n'
                                               f'[flag_store]\nfolder = "{tmp_path / "flags"}"\n')
    monkeypatch.delenv("LRCLR_MODEL", raising=False)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    return app


def _sign_in(app: AppTest, name: str, password: str) -> AppTest:
    app.text_input[0].set_value(name)
    app.text_input[1].set_value(password)
    return app.button[0].click().run()


def test_with_logins_nothing_is_shown_before_sign_in_and_the_annotator_is_the_user(monkeypatch, tmp_path):
    app = _login_app(monkeypatch, tmp_path)
    assert not app.exception
    assert [t.label for t in app.text_input] == ["User name", "Password"]
    assert not app.dataframe and not app.sidebar.selectbox  # no page, no model, no sidebar
    _sign_in(app, "ann", "wrong password")
    assert any("Wrong user name or password" in e.value for e in app.error) and not app.dataframe
    _sign_in(app, "ann", "battery staple")
    assert not app.exception and len(app.dataframe[0].value) == 14
    assert app.sidebar.selectbox(key="model-choice").disabled  # only an admin chooses the model
    assert not any(t.label == "Your name or ID" for t in app.sidebar.text_input)
    assert app.session_state["annotator"] == "ann"


def test_an_admin_may_choose_the_model(monkeypatch, tmp_path):
    app = _sign_in(_login_app(monkeypatch, tmp_path), "dr_carol", "correct horse")
    choice = app.sidebar.selectbox(key="model-choice")
    assert not choice.disabled
    choice.set_value("baseline (bundled)").run()
    assert not app.exception
    assert "baseline-default" in app.sidebar.caption[1].value.replace("\\", "")


def test_a_walk_in_an_allowed_folder_reads_neither_links_out_nor_hidden_files(tmp_path, roots, monkeypatch):
    """Files and reports found in an allowed folder are read only if they resolve inside it."""
    import shutil

    from lrclr.batch.sources import FolderSource
    from tests.support.paths import TEST_DATA

    studies = roots / "studies"
    shutil.copy(TEST_DATA / "nih_00000075_128_gray8.png", studies / "case.png")
    (tmp_path / "outside" / "secret.png").write_bytes((TEST_DATA / "nih_00000075_128_gray8.png").read_bytes())
    (tmp_path / "outside" / "case.txt").write_text("Patient John Smith. Effusion.")
    (studies / "link.png").symlink_to(tmp_path / "outside" / "secret.png")
    (studies / "case.txt").symlink_to(tmp_path / "outside" / "case.txt")
    (studies / ".git" / "hidden.png").write_bytes(b"x")
    deployment_settings(monkeypatch, tmp_path, f'[batch]\nserver_folders = ["{roots}"]\n')
    settings = load_settings()
    source = FolderSource.walking(settings.batch_folder("studies"), reports_dir=studies, allow=settings.allows_file)
    while source.listing:
        source.list_more()
    assert sorted(item.name for item in source.inputs) == ["a.png", "case.png"]
    case = next(item for item in source.inputs if item.name == "case.png")
    assert source.report(case) is None  # its report links out of the allowed folder
