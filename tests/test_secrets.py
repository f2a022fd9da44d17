"""Secrets at rest: encrypted in every row that holds one, read back in plaintext by the ORM and the
probe workers, encrypted by `netpulse migrate` when written before encryption, re-encrypted by
`netpulse secrets rotate`, and never shown in full by the CLI or the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from analytics.notify.channels import create_channel
from cli import main
from netpulse import crypto
from netpulse.config import get_settings, load_settings
from netpulse.crypto import Keyring
from netpulse.errors import ConfigError, ValidationError
from netpulse.inventory import DeviceSpec, create_device
from netpulse.schema import Device, NotificationChannel, SnmpCredential
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.factories import make_org

PLAIN = {
    "v2c_community": "cred-community-7f3a",
    "auth_password": "auth-pass-91bd",
    "priv_password": "priv-pass-c04e",
    "device_community": "device-community-55e2",
    "slack_url": "https://hooks.slack.test/services/T000/B000/slack-token-2b7c",
    "webhook_url": "https://receiver.test/in?token=webhook-token-8d1f",
    "webhook_secret": "webhook-secret-0123456789abcdef",
    "header_value": "Bearer header-token-6a9e",
}
SECRET_TABLES = ("snmp_credentials", "devices", "notification_channels")


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture
def stored(session: Session, db: psycopg.Connection) -> dict[str, Any]:
    """One secret of every kind, written through the ORM (and the functions the CLI and API use)."""
    org = make_org(db)
    v2c = SnmpCredential(organization_id=org, name="v2c-ops", version="2c", community=PLAIN["v2c_community"])
    v3 = SnmpCredential(organization_id=org, name="v3-ops", version="3", username="netpulse", auth_protocol="SHA",
                        auth_password=PLAIN["auth_password"], priv_protocol="AES",
                        priv_password=PLAIN["priv_password"])
    session.add_all([v2c, v3])
    session.flush()
    inline = create_device(session, org, DeviceSpec(name="edge-1", address="192.0.2.1", device_type="router",
                                                    snmp_community=PLAIN["device_community"]))
    profiled = create_device(session, org, DeviceSpec(name="core-1", address="192.0.2.2", device_type="router",
                                                      snmp_version="3", snmp_credential="v3-ops"))
    create_channel(session, org, "noc-slack", "slack", {"url": PLAIN["slack_url"]})
    create_channel(session, org, "hooks", "webhook", {"url": PLAIN["webhook_url"], "secret": PLAIN["webhook_secret"],
                                                      "headers": {"Authorization": PLAIN["header_value"]}})
    session.commit()
    return {"org": org, "inline": inline.id, "profiled": profiled.id}


def raw_rows(db: psycopg.Connection) -> str:
    return "\n".join(str(db.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()) for t in SECRET_TABLES)


def raw_secrets(db: psycopg.Connection) -> list[str]:
    values = [v for t, cols in (("snmp_credentials", "community, auth_password, priv_password"),
                                ("devices", "snmp_community"))
              for row in db.execute(f"SELECT {cols} FROM {t}") for v in row if v is not None]
    for (config,) in db.execute("SELECT config FROM notification_channels"):
        values += [config[k] for k in ("url", "secret") if k in config]
        values += list(config.get("headers", {}).values())
    return values


def test_rows_hold_no_plaintext_and_read_back_decrypted(stored: dict[str, Any], db: psycopg.Connection,
                                                        session: Session) -> None:
    dump = raw_rows(db)
    for name, value in PLAIN.items():
        assert value not in dump, f"{name} is stored in plaintext"
    values = raw_secrets(db)
    assert len(values) == len(PLAIN) and all(v.startswith(crypto.PREFIX) for v in values)
    session.expire_all()
    v3 = session.query(SnmpCredential).filter_by(name="v3-ops").one()
    assert (v3.auth_password, v3.priv_password) == (PLAIN["auth_password"], PLAIN["priv_password"])
    assert session.get(Device, stored["inline"]).snmp_community == PLAIN["device_community"]  # type: ignore[union-attr]
    hooks = session.query(NotificationChannel).filter_by(name="hooks").one()
    assert hooks.config == {"url": PLAIN["webhook_url"], "secret": PLAIN["webhook_secret"],
                            "headers": {"Authorization": PLAIN["header_value"]}}
    with pytest.raises(ConfigError, match="cannot be decrypted"):  # another key reads nothing
        Keyring.from_keys(Keyring.new_key()).decrypt(values[0])


def test_the_probe_worker_decrypts_what_it_polls_with(stored: dict[str, Any], db_url: str) -> None:
    from workers.probes import snmp_targets
    from workers.runtime import Runtime

    rt = Runtime(db_url)
    try:
        targets = {t.device_id: t for t in snmp_targets(rt, [stored["inline"], stored["profiled"]])}
    finally:
        rt.engine.dispose()
    assert targets[stored["inline"]].community == PLAIN["device_community"]
    v3 = targets[stored["profiled"]]
    assert (v3.username, v3.auth_password, v3.priv_password) == ("netpulse", PLAIN["auth_password"],
                                                                  PLAIN["priv_password"])


def write_plaintext(db: psycopg.Connection) -> uuid.UUID:
    """Rows as a database from before encryption holds them."""
    org = make_org(db)
    db.execute("INSERT INTO snmp_credentials (organization_id, name, version, username, auth_protocol, auth_password)"
               " VALUES (%s, 'old-v3', '3', 'u', 'SHA', %s)", (org, PLAIN["auth_password"]))
    db.execute("INSERT INTO devices (organization_id, name, address, device_type, snmp_version, snmp_community)"
               " VALUES (%s, 'old-1', '192.0.2.9', 'router', '2c', %s)", (org, PLAIN["device_community"]))
    db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES (%s, 'old-hook', "
               "'webhook', %s)", (org, Jsonb({"url": PLAIN["webhook_url"], "secret": PLAIN["webhook_secret"]})))
    return org


def test_migrate_encrypts_secrets_written_before_encryption_once(cli: CliRunner, settings_env: None,
                                                                 db: psycopg.Connection, session: Session) -> None:
    write_plaintext(db)
    assert session.query(Device).one().snmp_community == PLAIN["device_community"]  # legacy plaintext still reads
    first = cli.invoke(main, ["migrate"])
    assert first.exit_code == 0, first.output
    assert "encrypted 4 stored secret(s) in 3 row(s)" in first.output
    dump = raw_rows(db)
    assert not any(v in dump for v in PLAIN.values())
    session.expire_all()
    assert session.query(Device).one().snmp_community == PLAIN["device_community"]
    again = cli.invoke(main, ["migrate"])
    assert again.exit_code == 0 and "encrypted" not in again.output  # nothing left to do


def test_migrate_with_plaintext_and_no_key_says_how_to_fix_it(cli: CliRunner, settings_env: None,
                                                              db: psycopg.Connection,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_plaintext(db)
    monkeypatch.delenv("NETPULSE_ENCRYPTION_KEY")
    monkeypatch.delenv("NETPULSE_SECRET_KEY", raising=False)
    result = cli.invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "Error: stored secrets need a key: set NETPULSE_SECRET_KEY or NETPULSE_ENCRYPTION_KEY" in result.output
    assert PLAIN["device_community"] in raw_rows(db)  # untouched


def test_rotate_reencrypts_everything_under_the_new_key_and_reruns_do_nothing(
        cli: CliRunner, settings_env: None, stored: dict[str, Any], db: psycopg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = TEST_ENCRYPTION_KEY, Keyring.new_key()
    before = raw_secrets(db)
    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY", new)
    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY_OLD", old)
    first = cli.invoke(main, ["secrets", "rotate"])
    assert first.exit_code == 0, first.output
    assert "re-encrypted 5 of 5 row(s) holding secrets" in first.output  # 2 credentials, 1 device, 2 channels
    assert "re-encrypting" in first.output  # the progress bar
    after = raw_secrets(db)
    assert len(after) == len(before) and not set(after) & set(before)
    only_new, only_old = Keyring.from_keys(new), Keyring.from_keys(old)
    assert sorted(only_new.decrypt(v) for v in after) == sorted(PLAIN.values())
    with pytest.raises(ConfigError):
        only_old.decrypt(after[0])
    again = cli.invoke(main, ["secrets", "rotate"])
    assert again.exit_code == 0 and "re-encrypted 0 of 5 row(s)" in again.output
    assert raw_secrets(db) == after
    # A key that never wrote them: the run stops at the first row it cannot read, changing nothing.
    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY", Keyring.new_key())
    monkeypatch.delenv("NETPULSE_ENCRYPTION_KEY_OLD")
    get_settings.cache_clear()
    lost = cli.invoke(main, ["secrets", "rotate"])
    assert lost.exit_code == 1 and "Error: snmp_credentials row" in lost.output
    assert "NETPULSE_ENCRYPTION_KEY_OLD" in lost.output and raw_secrets(db) == after


def test_rotate_away_from_a_key_derived_from_the_secret_key(cli: CliRunner, settings_env: None,
                                                            db: psycopg.Connection, session: Session,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NETPULSE_ENCRYPTION_KEY the key comes from NETPULSE_SECRET_KEY; moving to a key of its own
    takes the former secret key as the old one."""
    former = "Vw3k9Qp1ZtXr7LmN2bHc8YdF5gJs4Ua6-former-secret-key"
    crypto.use_keyring(load_settings(secret_key=former, encryption_key=None).keyring())
    org = make_org(db)
    create_device(session, org, DeviceSpec(name="edge-1", address="192.0.2.1", device_type="router",
                                           snmp_community=PLAIN["device_community"]))
    session.commit()
    new = Keyring.new_key()
    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY", new)
    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY_OLD", former)
    result = cli.invoke(main, ["secrets", "rotate"])
    assert result.exit_code == 0 and "re-encrypted 1 of 1 row(s)" in result.output, result.output
    assert Keyring.from_keys(new).decrypt(raw_secrets(db)[0]) == PLAIN["device_community"]


def test_settings_build_the_keyring() -> None:
    key = Keyring.new_key()
    assert load_settings(encryption_key=key).keyring().keys[0] == key.encode()
    secret = "Vw3k9Qp1ZtXr7LmN2bHc8YdF5gJs4Ua6-a-secret-key"
    derived = load_settings(secret_key=secret, encryption_key=None).keyring()
    assert derived.keys == (crypto.derive_key(secret),)
    both = load_settings(encryption_key=key, encryption_key_old=f"{Keyring.new_key()}, {secret}").keyring()
    assert len(both.keys) == 3 and both.keys[2] == crypto.derive_key(secret)
    with pytest.raises(ConfigError, match="netpulse secrets new-key"):
        load_settings(encryption_key="not-a-fernet-key").keyring()
    with pytest.raises(ConfigError, match="stored secrets need a key"):
        load_settings(secret_key=None, encryption_key=None).keyring()


def test_cli_and_api_never_show_a_secret_in_full(cli: CliRunner, settings_env: None, stored: dict[str, Any],
                                                 session: Session) -> None:
    listed = cli.invoke(main, ["notify", "channel", "list"])
    assert listed.exit_code == 0, listed.output
    assert "hooks.slack.test/..." in listed.output
    assert not any(v in listed.output for v in PLAIN.values())
    added = cli.invoke(main, ["notify", "channel", "add", "ops-slack", "--kind", "slack", "--url",
                              "https://hooks.slack.test/services/T1/B1/another-slack-token"])
    assert added.exit_code == 0 and "another-slack-token" not in added.output
    with pytest.raises(ValidationError) as err:  # a validation message masks the community it names
        create_device(session, stored["org"], DeviceSpec(name="x", address="192.0.2.3", device_type="router",
                                                         snmp_version="3", snmp_credential="v3-ops",
                                                         snmp_community="very-secret-community"))
    assert "very-secret-community" not in str(err.value.message) + str(err.value.details)
