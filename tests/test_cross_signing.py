"""Cross-signing of the bot's own identity, against a real Synapse.

Every signature is checked here independently of :mod:`bot.edge.cross_signing`: Ed25519 public
keys from ``cryptography`` over canonical JSON without ``signatures`` and ``unsigned``.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nio import AsyncClient, AsyncClientConfig, LoginResponse

from bot.edge import cross_signing
from bot.edge.cross_signing import ensure_cross_signing, upload_signatures
from bot.edge.signing_keys import (
    KEYS_FILE,
    CrossSigningError,
    CrossSigningKeys,
    key_id,
    signed_copy,
    unpadded_b64,
)
from demo.homeserver import Homeserver
from tests.world import PASSWORD, make_world

pytestmark = pytest.mark.e2e


# ---- independent verification -------------------------------------------------------------
def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verifies(public_b64: str, obj: dict[str, Any], signature_b64: str) -> bool:
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    public = Ed25519PublicKey.from_public_bytes(_b64decode(public_b64))
    try:
        public.verify(_b64decode(signature_b64), encode_canonical_json(stripped))
    except InvalidSignature:
        return False
    return True


def only_key(key_obj: dict[str, Any]) -> str:
    ((kid, pub),) = key_obj["keys"].items()
    assert kid == f"ed25519:{pub}"
    return str(pub)


def check_signed(obj: dict[str, Any], user_id: str, signer_pub: str) -> None:
    signature = obj["signatures"][user_id][f"ed25519:{signer_pub}"]
    assert verifies(signer_pub, obj, signature)


def check_chain(
    answer: dict[str, Any], user_id: str, device_id: str, *, owner: bool = False
) -> str:
    """master -> self-signing -> device; returns the master public key.

    Synapse shows signatures ON cross-signing keys only to the user who made them, so the
    device's signature of the master key is checked when the owner asked (``owner``).
    """
    master = answer["master_keys"][user_id]
    assert master["usage"] == ["master"]
    assert master["user_id"] == user_id
    master_pub = only_key(master)
    ssk = answer["self_signing_keys"][user_id]
    assert ssk["usage"] == ["self_signing"]
    ssk_pub = only_key(ssk)
    check_signed(ssk, user_id, master_pub)
    device = answer["device_keys"][user_id][device_id]
    check_signed(device, user_id, ssk_pub)
    if owner:
        # The device vouches for the master key too (what Element trusts most).
        device_ed = device["keys"][f"ed25519:{device_id}"]
        signature = master["signatures"][user_id][f"ed25519:{device_id}"]
        assert verifies(device_ed, master, signature)
    else:
        assert "signatures" not in master
    return master_pub


async def query_keys(hs_url: str, token: str, user_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            hs_url + "/_matrix/client/v3/keys/query",
            json={"device_keys": {user_id: []}},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
    return answer


# ---- fixtures ----------------------------------------------------------------------------
def _new_client(url: str, user_id: str, store: Path) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    return AsyncClient(
        url,
        user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )


async def logged_in(url: str, user_id: str, store: Path) -> AsyncClient:
    client = _new_client(url, user_id, store)
    response = await client.login(PASSWORD, device_name="cross-signing test")
    assert isinstance(response, LoginResponse)
    if client.should_upload_keys:
        await client.keys_upload()
    return client


async def restored(url: str, old: AsyncClient, store: Path) -> AsyncClient:
    client = _new_client(url, old.user_id, store)
    client.restore_login(old.user_id, old.device_id, old.access_token)
    return client


class Account:
    def __init__(self, hs: Homeserver, tmp: Path) -> None:
        self.hs = hs
        self.tmp = tmp
        self.localpart = f"xs{uuid.uuid4().hex[:10]}"
        self.data_dir = tmp / "data"
        self.clients: list[AsyncClient] = []

    async def client(self, store: str = "crypto") -> AsyncClient:
        client = await logged_in(self.hs.url, self.user_id, self.tmp / store)
        self.clients.append(client)
        return client

    async def open(self) -> Account:
        self.user_id = await self.hs.register(self.localpart, PASSWORD)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        return self

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def account(synapse: Homeserver, tmp_path: Path) -> AsyncIterator[Account]:
    acc = await Account(synapse, tmp_path).open()
    yield acc
    await acc.close()


@pytest.fixture
async def observer_token(synapse: Homeserver) -> str:
    localpart = f"obs{uuid.uuid4().hex[:10]}"
    await synapse.register(localpart, PASSWORD)
    token, _ = await synapse.login(localpart, PASSWORD)
    return token


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of every request bot.edge.cross_signing makes."""
    seen: list[str] = []
    original = cross_signing._Api.request

    async def spy(self: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        seen.append(path)
        return await original(self, path, body)

    monkeypatch.setattr(cross_signing._Api, "request", spy)
    return seen


# ---- tests -------------------------------------------------------------------------------
async def test_identity_is_published_and_the_chain_verifies_for_another_user(
    account: Account, observer_token: str, requests: list[str]
) -> None:
    client = await account.client()
    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    assert requests.count("/keys/device_signing/upload") == 1
    assert requests.count("/keys/signatures/upload") == 1

    seen_by_other = await query_keys(account.hs.url, observer_token, account.user_id)
    master_pub = check_chain(seen_by_other, account.user_id, client.device_id)
    assert account.user_id not in seen_by_other.get("user_signing_keys", {})

    # The user-signing key is only shown to its owner; it is signed by the master key too.
    own = await query_keys(account.hs.url, client.access_token, account.user_id)
    usk = own["user_signing_keys"][account.user_id]
    assert usk["usage"] == ["user_signing"]
    check_signed(usk, account.user_id, master_pub)
    assert check_chain(own, account.user_id, client.device_id, owner=True) == master_pub

    path = account.data_dir / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["uploaded"] is True
    assert saved["master_public"] == master_pub
    assert saved["signed_devices"] == [client.device_id]
    assert not list(account.data_dir.glob("*.tmp"))


async def test_second_start_publishes_nothing_and_keeps_the_identity(
    account: Account, observer_token: str, requests: list[str]
) -> None:
    client = await account.client()
    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    path = account.data_dir / KEYS_FILE
    saved = path.read_text()
    first = check_chain(
        await query_keys(account.hs.url, observer_token, account.user_id),
        account.user_id,
        client.device_id,
    )
    requests.clear()

    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    again = await restored(account.hs.url, client, account.tmp / "crypto")
    account.clients.append(again)
    await ensure_cross_signing(again, account.data_dir, None)  # no password needed any more

    assert requests == ["/keys/query", "/keys/query"]  # no upload of any kind
    assert path.read_text() == saved
    answer = await query_keys(account.hs.url, observer_token, account.user_id)
    assert check_chain(answer, account.user_id, client.device_id) == first


async def test_never_resets_an_identity_it_does_not_hold(
    account: Account, observer_token: str, requests: list[str]
) -> None:
    client = await account.client()
    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    before = await query_keys(account.hs.url, observer_token, account.user_id)

    # The key file is lost: the bot stops rather than replacing the published identity.
    lost = account.tmp / "lost"
    lost.mkdir()
    requests.clear()
    with pytest.raises(CrossSigningError, match="refusing to replace"):
        await ensure_cross_signing(client, lost, PASSWORD)
    assert requests == ["/keys/query"]
    assert not (lost / KEYS_FILE).exists()
    # A damaged file is never overwritten either.
    (lost / KEYS_FILE).write_text("{not json")
    with pytest.raises(CrossSigningError, match="damaged"):
        await ensure_cross_signing(client, lost, PASSWORD)
    assert (lost / KEYS_FILE).read_text() == "{not json"
    after = await query_keys(account.hs.url, observer_token, account.user_id)
    assert after["master_keys"] == before["master_keys"]


async def test_identity_replaced_elsewhere_is_refused_and_reset_needs_the_password(
    account: Account,
) -> None:
    client = await account.client()
    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    other = CrossSigningKeys.generate(account.user_id)
    async with aiohttp.ClientSession() as session:
        api = cross_signing._Api(client, session)
        # Replacing published keys requires user-interactive auth: without a password it
        # cannot be done; with it, Synapse's 401 + session is completed.
        with pytest.raises(cross_signing._NeedsInteractiveAuth):
            await cross_signing._upload_device_signing(api, other, None)
        with pytest.raises(CrossSigningError, match="refused the password"):
            await cross_signing._upload_device_signing(api, other, "wrong password")
        await cross_signing._upload_device_signing(api, other, PASSWORD)

    own = await query_keys(account.hs.url, client.access_token, account.user_id)
    assert only_key(own["master_keys"][account.user_id]) == key_id(other.master).split(":")[1]
    with pytest.raises(CrossSigningError, match="replaced elsewhere"):
        await ensure_cross_signing(client, account.data_dir, PASSWORD)


async def test_without_password_when_auth_is_required_it_warns_and_keeps_its_keys(
    account: Account,
    observer_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await account.client()

    async def needs_auth(*_: Any) -> None:
        raise cross_signing._NeedsInteractiveAuth("no password is configured")

    real_upload = cross_signing._upload_device_signing
    monkeypatch.setattr(cross_signing, "_upload_device_signing", needs_auth)
    with caplog.at_level(logging.WARNING, logger="bot.edge"):
        await ensure_cross_signing(client, account.data_dir, None)  # no crash
    assert "requires the account password once" in caplog.text
    assert PASSWORD not in caplog.text
    saved = json.loads((account.data_dir / KEYS_FILE).read_text())
    assert saved["uploaded"] is False

    # The next start publishes the keys generated (and saved) before.
    monkeypatch.setattr(cross_signing, "_upload_device_signing", real_upload)
    await ensure_cross_signing(client, account.data_dir, PASSWORD)
    answer = await query_keys(account.hs.url, observer_token, account.user_id)
    assert check_chain(answer, account.user_id, client.device_id) == saved["master_public"]


async def test_a_tampered_signature_is_rejected_through_the_failures_map(
    account: Account, observer_token: str, requests: list[str]
) -> None:
    first = await account.client("crypto-1")
    await ensure_cross_signing(first, account.data_dir, PASSWORD)
    keys = CrossSigningKeys.load(account.data_dir / KEYS_FILE, account.user_id)
    assert keys is not None

    # A second device of the same account, not signed yet.
    second = await account.client("crypto-2")
    own = await query_keys(account.hs.url, second.access_token, account.user_id)
    device = own["device_keys"][account.user_id][second.device_id]
    ssk_id = key_id(keys.self_signing)
    garbage = unpadded_b64(keys.self_signing.sign(b"garbage"))
    async with aiohttp.ClientSession() as session:
        api = cross_signing._Api(second, session)
        with pytest.raises(CrossSigningError, match=r"rejected.*M_INVALID_SIGNATURE"):
            await upload_signatures(
                api,
                {
                    account.user_id: {
                        second.device_id: signed_copy(account.user_id, device, ssk_id, garbage)
                    }
                },
            )
    answer = await query_keys(account.hs.url, observer_token, account.user_id)
    assert ssk_id not in answer["device_keys"][account.user_id][second.device_id].get(
        "signatures", {}
    ).get(account.user_id, {})

    # The real thing: the same identity signs the new device, without publishing keys again.
    requests.clear()
    await ensure_cross_signing(second, account.data_dir, None)
    assert "/keys/device_signing/upload" not in requests
    answer = await query_keys(account.hs.url, observer_token, account.user_id)
    master_pub = check_chain(answer, account.user_id, second.device_id)
    assert check_chain(answer, account.user_id, first.device_id) == master_pub
    own = await query_keys(account.hs.url, first.access_token, account.user_id)
    for device_id in (first.device_id, second.device_id):
        assert check_chain(own, account.user_id, device_id, owner=True) == master_pub
    saved = json.loads((account.data_dir / KEYS_FILE).read_text())
    assert sorted(saved["signed_devices"]) == sorted([first.device_id, second.device_id])


async def test_the_running_bot_is_cross_signed_and_keeps_its_identity(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        data_dir = world.base / "data"
        session = json.loads((data_dir / "session.json").read_text())
        device_id = session["device_id"]
        chair = world.members["chair"].client
        answer = await query_keys(synapse.url, chair.access_token, world.bot_user)
        master = check_chain(answer, world.bot_user, device_id)
        own = await query_keys(synapse.url, session["access_token"], world.bot_user)
        assert check_chain(own, world.bot_user, device_id, owner=True) == master
        path = data_dir / KEYS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = path.read_text()
        assert json.loads(saved)["master_public"] == master

        assert world.bot is not None
        await world.bot.stop()
        await world.bot.start_ready()
        answer = await query_keys(synapse.url, chair.access_token, world.bot_user)
        assert check_chain(answer, world.bot_user, device_id) == master
        assert path.read_text() == saved
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        log_text = world.bot.log_path.read_text()
        assert log_text.count("published the cross-signing identity") == 1
        for module in ("bot.edge.cross_signing", "bot.edge.signing_keys"):
            assert f" WARNING {module}" not in log_text
            assert f" ERROR {module}" not in log_text
        seen = await world.ask("chair", "operational", "!help")
        assert seen.sender == world.bot_user
        assert seen.decrypted
    finally:
        await world.close()
