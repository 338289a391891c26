"""What `v2s submit` sends to the cluster in the runtime_env: settings by name, keys only when asked."""

from jobs.control import NOT_FORWARDED, SECRET_ENV, forwarded_env, runtime_env

CALLER = {
    "GEMINI_API_KEY": "g-secret",
    "V2S_OPENAI_API_KEY": "o-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "V2S_RAY_TOKEN": "ray-token",
    "V2S_PLOT_MODEL": "gemini-2.5-flash",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "HOME": "/root",
}


def test_keys_stay_home_unless_asked_for():
    sent = forwarded_env(CALLER)
    assert sent == {"V2S_PLOT_MODEL": "gemini-2.5-flash", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert not set(sent) & (SECRET_ENV | NOT_FORWARDED)


def test_forward_secrets_sends_keys_but_never_the_ray_token():
    sent = forwarded_env(CALLER, secrets=True)
    assert sent["GEMINI_API_KEY"] == "g-secret" and sent["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert "V2S_RAY_TOKEN" not in sent and "HOME" not in sent


def test_runtime_env_without_code_upload_has_only_env_vars(monkeypatch):
    for name, value in CALLER.items():
        monkeypatch.setenv(name, value)
    env = runtime_env(ship_code=False)
    assert set(env) == {"env_vars"} and "GEMINI_API_KEY" not in env["env_vars"]
