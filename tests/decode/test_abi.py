"""The fast router-call decoder (monitor/decode/abi.py) against eth-abi, which it stands in for: on
every router call of the recorded mainnet blocks (multicall bodies and Universal Router inputs
included) it decodes exactly what eth-abi decodes; on thousands of mutations of them (bytes flipped,
offsets and lengths rewritten, cut, extended) it never accepts what eth-abi refuses, nor decodes a
value eth-abi reads differently; and pending decoding gives the same intents either way."""

from __future__ import annotations

import random

import pytest
from conftest import TRACES, raw_block
from eth_abi import decode as eth_decode
from eth_abi import encode

from mevwatch.monitor.decode import abi, pending

pytestmark = pytest.mark.fast

# every argument list monitor/decode/pending.py decodes, by selector where it has one
V2_5 = ["uint256", "uint256", "address[]", "address", "uint256"]
V2_4 = ["uint256", "address[]", "address", "uint256"]
BY_SELECTOR: dict[str, list[str]] = {sel: types for sel, (_k, _e, types) in pending._V2.items()}
BY_SELECTOR.update({sel: ["uint256", "uint256", "address[]", "address"] for sel in pending._V2_ROUTER02})
BY_SELECTOR.update({
    pending._V3_EXACT_INPUT_SINGLE: ["(address,address,uint24,address,uint256,uint256,uint256,uint160)"],
    pending._V3_EXACT_OUTPUT_SINGLE: ["(address,address,uint24,address,uint256,uint256,uint256,uint160)"],
    pending._R2_EXACT_INPUT_SINGLE: ["(address,address,uint24,address,uint256,uint256,uint160)"],
    pending._R2_EXACT_OUTPUT_SINGLE: ["(address,address,uint24,address,uint256,uint256,uint160)"],
    pending._V3_EXACT_INPUT: ["(bytes,address,uint256,uint256,uint256)"],
    pending._V3_EXACT_OUTPUT: ["(bytes,address,uint256,uint256,uint256)"],
    pending._R2_EXACT_INPUT: ["(bytes,address,uint256,uint256)"],
    pending._R2_EXACT_OUTPUT: ["(bytes,address,uint256,uint256)"],
    pending._MULTICALL: ["bytes[]"],
    pending._MULTICALL_DEADLINE: ["uint256", "bytes[]"],
    pending._MULTICALL_BLOCKHASH: ["bytes32", "bytes[]"],
    pending._DIRECT_LEG: ["address", "address", "uint256", "uint256"],
    pending._UR_EXECUTE: ["bytes", "bytes[]", "uint256"],
    pending._UR_EXECUTE_NO_DEADLINE: ["bytes", "bytes[]"],
})
UR_V3 = ["address", "uint256", "uint256", "bytes", "bool"]
UR_V2 = ["address", "uint256", "uint256", "address[]", "bool"]


# encodings of values at the edges, of every argument list (the recorded blocks predate the
# Universal Router and SwapRouter02)
EDGE = [
    (V2_5, [0, 2**256 - 1, [], "0x" + "00" * 20, 0]),
    (V2_4, [5, ["0x" + "ab" * 20] * 7, "0x" + "cd" * 20, 2**64]),
    (["(bytes,address,uint256,uint256,uint256)"], [(b"", "0x" + "01" * 20, 1, 2, 3)]),
    (["(bytes,address,uint256,uint256)"], [(b"\xff" * 65, "0x" + "01" * 20, 1, 2)]),
    (["(address,address,uint24,address,uint256,uint256,uint256,uint160)"],
     [("0x" + "01" * 20, "0x" + "02" * 20, 2**24 - 1, "0x" + "03" * 20, 1, 2, 3, 2**160 - 1)]),
    (["bytes", "bytes[]", "uint256"], [b"\x00\x08", [b"", b"\x01" * 33, b"\x02" * 32], 7]),
    (["bytes32", "bytes[]"], [b"\x09" * 32, []]),
    (UR_V3, ["0x" + "0f" * 20, 1, 2, b"\x11" * 43, True]),
    (UR_V2, ["0x" + "0f" * 20, 1, 2, ["0x" + "aa" * 20, "0x" + "bb" * 20], False]),
]


def _plain(v):
    """eth-abi's tuples as lists (the fast decoder gives arrays as lists)."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _same(types: list[str], body: bytes) -> bool:
    """True when the fast decoder accepts ``body``: then eth-abi must decode it to the same values.
    False when the fast decoder refuses it (eth-abi decides then, as the pending decoder does)."""
    try:
        fast = abi.decode(abi.arguments(types), body)
    except abi.AbiError:
        return False
    assert _plain(fast) == _plain(eth_decode(types, body)), (types, body.hex())  # eth-abi raising fails the test too
    return True


def _real_calls() -> list[tuple[list[str], bytes]]:
    """Every call of the recorded blocks whose selector the pending decoder knows, and the calls and
    Universal Router inputs inside them."""
    out: list[tuple[list[str], bytes]] = []

    def add(sel: str, body: bytes) -> None:
        types = BY_SELECTOR[sel]
        out.append((types, body))
        try:
            args = eth_decode(types, body)
        except Exception:  # noqa: BLE001 - a call eth-abi refuses: kept, nothing inside it to add
            return
        if "bytes[]" in types:
            inner = args[types.index("bytes[]")]
            if sel in (pending._UR_EXECUTE, pending._UR_EXECUTE_NO_DEADLINE):
                for cmd, inp in zip(args[0], inner):
                    c = cmd & 0x3F
                    if c in (pending.UR_V3_SWAP_EXACT_IN, pending.UR_V3_SWAP_EXACT_OUT):
                        out.append((UR_V3, inp))
                    elif c in (pending.UR_V2_SWAP_EXACT_IN, pending.UR_V2_SWAP_EXACT_OUT):
                        out.append((UR_V2, inp))
            else:
                for c in inner:
                    if ("0x" + c[:4].hex()) in BY_SELECTOR:
                        add("0x" + c[:4].hex(), c[4:])

    for path in sorted(TRACES.glob("*.json.gz")):
        for t in raw_block(int(path.name.split(".")[0]))["traces"]:
            data = (t.get("action") or {}).get("input") or ""
            if data[:10].lower() in BY_SELECTOR and len(data) % 2 == 0:
                add(data[:10].lower(), bytes.fromhex(data[10:]))
    return out


@pytest.fixture(scope="module")
def real_calls():
    return _real_calls()


def test_every_real_router_call_decodes_as_eth_abi_decodes_it(real_calls):
    kinds = {tuple(t) for t, _b in real_calls}
    assert len(real_calls) >= 100 and len(kinds) >= 5, (len(real_calls), kinds)
    refused = [(t, b.hex()) for t, b in real_calls if not _same(t, b)]
    # the fast decoder refuses only what eth-abi refuses too (never a real call eth-abi decodes)
    for types, hexbody in refused:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any eth-abi error
            eth_decode(types, bytes.fromhex(hexbody))


def _mutations(body: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    words = max(1, len(body) // 32)
    for _ in range(n):
        b = bytearray(body)
        how = rng.randrange(6)
        if how == 0 and b:  # one byte flipped
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == 1:  # a word rewritten with a small number (offsets, lengths)
            w = rng.randrange(words)
            b[32 * w : 32 * w + 32] = rng.choice([0, 1, 31, 32, 64, 96, 2**16, len(body), len(body) - 32]).to_bytes(32, "big", signed=False) if len(body) >= 32 else b""
        elif how == 2:  # cut
            del b[rng.randrange(len(b) + 1):]
        elif how == 3:  # extended
            b += bytes(rng.randrange(256) for _ in range(rng.choice([1, 31, 32, 64])))
        elif how == 4 and b:  # the high byte of a word set (an address's or a small uint's padding)
            b[32 * rng.randrange(words)] = rng.randrange(1, 256)
        else:  # a padding byte after the last one set
            b += b"\x00" * 31 + b"\x01"
        out.append(bytes(b))
    return out


def test_mutated_calls_are_never_decoded_differently(real_calls):
    rng = random.Random(19)
    accepted = refused = 0
    seen = set()
    for types, body in real_calls + [(t, encode(t, v)) for t, v in EDGE]:
        if (tuple(types), body) in seen:
            continue
        seen.add((tuple(types), body))
        for m in _mutations(body, rng, 12):
            if _same(types, m):
                accepted += 1
            else:
                refused += 1
    assert accepted > 100 and refused > 100, (accepted, refused)  # both sides of the line were tried


@pytest.mark.parametrize("types, values", EDGE)
def test_encoded_edge_values_round_trip(types, values):
    body = encode(types, values)
    assert _same(types, body)
    assert _same(types, body + b"\x00" * 5)  # trailing bytes are ignored, as eth-abi ignores them


def test_pending_intents_are_the_same_with_either_decoder(real_calls, monkeypatch):
    calls = [(a.get("to"), a["input"], int(a.get("value") or "0x0", 16))
             for p in sorted(TRACES.glob("*.json.gz"))
             for t in raw_block(int(p.name.split(".")[0]))["traces"]
             if (a := t.get("action") or {}).get("input", "")[:10].lower() in BY_SELECTOR]
    fast = [pending.decode_pending(to, data, value) for to, data, value in calls]
    monkeypatch.setattr(pending, "abi_decode", pending.eth_abi_decode)
    slow = [pending.decode_pending(to, data, value) for to, data, value in calls]
    assert sum(len(x) for x in fast) >= 50
    assert fast == slow


def test_an_argument_type_the_fast_decoder_does_not_know_goes_to_eth_abi():
    types = ["uint256[]", "int24"]  # not among the fast decoder's types
    body = encode(types, [[1, 2], -5])
    assert pending.abi_decode(types, body) == ((1, 2), -5)
