"""Pending transactions: router calldata decoded into the swap the sender intends.

Covers Uniswap V2 Router02 (and its forks' routers), V3 SwapRouter and SwapRouter02
(exactInput/exactInputSingle/exactOutput/exactOutputSingle, V2 functions of
SwapRouter02, and their ``multicall`` wrappers), and the Universal Router's
``execute`` with V2/V3 swap commands, and direct pair trades of the kind bots make
(``leg(pair, tokenIn, amountIn, minOut)`` of the lab's bot contract: the pool is named,
the output token is the pool's other token). ``amount_out_min`` is the victim's slippage
limit for exact-input swaps; for exact-output swaps ``amount_in_max`` is.

Calldata that does not decode yields no intent (``decode_pending`` returns []), never
an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import Any

from eth_hash.auto import keccak

from mevwatch.monitor.decode import abi


def _sel(sig: str) -> str:
    return "0x" + keccak(sig.encode())[:4].hex()


class DecodingError(ValueError):
    """Calldata the ABI decoder refused."""


_SPECS: dict[tuple[str, ...], abi.Spec | None] = {}  # None: a type the fast decoder does not know


def abi_decode(types: list[str], data: bytes) -> tuple[Any, ...]:
    """The arguments ``types`` encoded in ``data``: by the fast strict decoder (monitor/decode/abi.py), or
    where it refuses them, by ``eth_abi.decode`` (which decides: it refuses too, or decodes what the
    fast one does not take). eth-abi is imported on first use: it takes ~0.25 s to import (it builds its
    type grammar), which every command and every replay of files without pending transactions would pay."""
    key = tuple(types)
    if key not in _SPECS:
        try:
            _SPECS[key] = abi.arguments(types)
        except ValueError:  # a type outside its set: eth-abi decodes every call of this kind
            _SPECS[key] = None
    specs = _SPECS[key]
    if specs is not None:
        try:
            return abi.decode(specs, data)
        except abi.AbiError:
            pass
    return eth_abi_decode(types, data)


def eth_abi_decode(types: list[str], data: bytes) -> tuple[Any, ...]:
    """``eth_abi.decode``, its errors as :class:`DecodingError`."""
    from eth_abi import decode
    from eth_abi.exceptions import DecodingError as AbiDecodingError

    try:
        return decode(types, data)
    except AbiDecodingError as exc:
        raise DecodingError(str(exc)) from None


@dataclass(slots=True)
class IntendedSwap:
    protocol: str  # uniswap_v2 | uniswap_v3
    router: str
    path: list[str]  # token addresses, in trade order
    fees: list[int]  # V3 fee tiers per hop (empty for V2)
    exact: str  # "in" or "out"
    amount_in: int | None  # exact input, or None for exact-output swaps
    amount_out_min: int | None  # slippage limit of an exact-input swap
    amount_out: int | None  # exact output
    amount_in_max: int | None  # slippage limit of an exact-output swap
    recipient: str | None
    deadline: int | None
    pays_eth: bool = False
    extra: dict = field(default_factory=dict)
    pool: str | None = None  # set when the call names its pool (a direct pair trade)

    @property
    def token_in(self) -> str:
        return self.path[0]

    @property
    def token_out(self) -> str:
        return self.path[-1]


_V2 = {
    _sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"): ("in", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
    _sel("swapTokensForExactTokens(uint256,uint256,address[],address,uint256)"): ("out", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
    _sel("swapExactETHForTokens(uint256,address[],address,uint256)"): ("in_eth", True, ["uint256", "address[]", "address", "uint256"]),
    _sel("swapTokensForExactETH(uint256,uint256,address[],address,uint256)"): ("out", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
    _sel("swapExactTokensForETH(uint256,uint256,address[],address,uint256)"): ("in", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
    _sel("swapETHForExactTokens(uint256,address[],address,uint256)"): ("out_eth", True, ["uint256", "address[]", "address", "uint256"]),
    _sel("swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256,uint256,address[],address,uint256)"): ("in", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
    _sel("swapExactETHForTokensSupportingFeeOnTransferTokens(uint256,address[],address,uint256)"): ("in_eth", True, ["uint256", "address[]", "address", "uint256"]),
    _sel("swapExactTokensForETHSupportingFeeOnTransferTokens(uint256,uint256,address[],address,uint256)"): ("in", False, ["uint256", "uint256", "address[]", "address", "uint256"]),
}
# SwapRouter02's V2 functions have no deadline
_V2_ROUTER02 = {
    _sel("swapExactTokensForTokens(uint256,uint256,address[],address)"): "in",
    _sel("swapTokensForExactTokens(uint256,uint256,address[],address)"): "out",
}
_V3_EXACT_INPUT_SINGLE = _sel("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))")
_V3_EXACT_INPUT = _sel("exactInput((bytes,address,uint256,uint256,uint256))")
_V3_EXACT_OUTPUT_SINGLE = _sel("exactOutputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))")
_V3_EXACT_OUTPUT = _sel("exactOutput((bytes,address,uint256,uint256,uint256))")
_R2_EXACT_INPUT_SINGLE = _sel("exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))")
_R2_EXACT_INPUT = _sel("exactInput((bytes,address,uint256,uint256))")
_R2_EXACT_OUTPUT_SINGLE = _sel("exactOutputSingle((address,address,uint24,address,uint256,uint256,uint160))")
_R2_EXACT_OUTPUT = _sel("exactOutput((bytes,address,uint256,uint256))")
_MULTICALL = _sel("multicall(bytes[])")
_MULTICALL_DEADLINE = _sel("multicall(uint256,bytes[])")
_MULTICALL_BLOCKHASH = _sel("multicall(bytes32,bytes[])")
_DIRECT_LEG = _sel("leg(address,address,uint256,uint256)")  # the lab's bot: one leg straight on a pair
_UR_EXECUTE = _sel("execute(bytes,bytes[],uint256)")
_UR_EXECUTE_NO_DEADLINE = _sel("execute(bytes,bytes[])")

UR_V3_SWAP_EXACT_IN = 0x00
UR_V3_SWAP_EXACT_OUT = 0x01
UR_V2_SWAP_EXACT_IN = 0x08
UR_V2_SWAP_EXACT_OUT = 0x09


def v3_path(raw: bytes) -> tuple[list[str], list[int]]:
    """Decode a V3 packed path: token (20) | fee (3) | token (20) | ..."""
    if len(raw) < 43 or (len(raw) - 20) % 23 != 0:
        raise ValueError("bad V3 path length")
    tokens, fees = ["0x" + raw[:20].hex()], []
    for k in range(20, len(raw), 23):
        fees.append(int.from_bytes(raw[k : k + 3], "big"))
        tokens.append("0x" + raw[k + 3 : k + 23].hex())
    return tokens, fees


def _addr(a: str) -> str:
    return a.lower()


_last: tuple[str, list[IntendedSwap]] | None = None


def pending_intents(tx_hash: str, to: str | None, data: str, value: int = 0) -> list[IntendedSwap]:
    """:func:`decode_pending` of one pending transaction, decoded once for all the mempool rules:
    the engine hands each transaction to every rule in turn, so the last result is kept (one
    entry, keyed by the transaction hash: a hash names its calldata). Shared: the sandwich rule
    completes a direct pair trade's path in place (monitor/detect/pending.py ``_pool_for``), which
    the opaque-call rule, running after it, ignores (direct trades are never its victims). One
    engine per process (the daemon, the demo and each replay process have one)."""
    global _last
    if _last is not None and _last[0] == tx_hash:
        return _last[1]
    swaps = decode_pending(to, data, value)
    _last = (tx_hash, swaps)
    return swaps


def decode_pending(to: str | None, data: str, value: int = 0, depth: int = 0) -> list[IntendedSwap]:
    """Every swap a pending call intends, in order (a multicall may hold several)."""
    if to is None or len(data) < 10 or depth > 2:
        return []
    router = to.lower()
    sel = data[:10].lower()
    try:
        body = bytes.fromhex(data[10:])
    except ValueError:
        return []
    try:
        return _decode(router, sel, body, value, depth)
    except (DecodingError, ValueError, IndexError, OverflowError, TypeError):
        return []


def _decode(router: str, sel: str, body: bytes, value: int, depth: int) -> list[IntendedSwap]:
    if sel in _V2:
        kind, eth, types = _V2[sel]
        args = abi_decode(types, body)
        if kind == "in":
            amount_in, min_out, path, to, deadline = args
            return [IntendedSwap("uniswap_v2", router, [_addr(p) for p in path], [], "in", amount_in, min_out, None, None, _addr(to), deadline)]
        if kind == "out":
            amount_out, max_in, path, to, deadline = args
            return [IntendedSwap("uniswap_v2", router, [_addr(p) for p in path], [], "out", None, None, amount_out, max_in, _addr(to), deadline)]
        if kind == "in_eth":
            min_out, path, to, deadline = args
            return [IntendedSwap("uniswap_v2", router, [_addr(p) for p in path], [], "in", value, min_out, None, None, _addr(to), deadline, pays_eth=True)]
        amount_out, path, to, deadline = args  # out_eth
        return [IntendedSwap("uniswap_v2", router, [_addr(p) for p in path], [], "out", None, None, amount_out, value, _addr(to), deadline, pays_eth=True)]
    if sel in _V2_ROUTER02:
        a, b, path, to = abi_decode(["uint256", "uint256", "address[]", "address"], body)
        p = [_addr(x) for x in path]
        if _V2_ROUTER02[sel] == "in":
            return [IntendedSwap("uniswap_v2", router, p, [], "in", a, b, None, None, _addr(to), None)]
        return [IntendedSwap("uniswap_v2", router, p, [], "out", None, None, a, b, _addr(to), None)]
    if sel == _V3_EXACT_INPUT_SINGLE:
        ((tin, tout, fee, to, deadline, amount_in, min_out, _),) = abi_decode(["(address,address,uint24,address,uint256,uint256,uint256,uint160)"], body)
        return [IntendedSwap("uniswap_v3", router, [_addr(tin), _addr(tout)], [fee], "in", amount_in, min_out, None, None, _addr(to), deadline)]
    if sel == _R2_EXACT_INPUT_SINGLE:
        ((tin, tout, fee, to, amount_in, min_out, _),) = abi_decode(["(address,address,uint24,address,uint256,uint256,uint160)"], body)
        return [IntendedSwap("uniswap_v3", router, [_addr(tin), _addr(tout)], [fee], "in", amount_in, min_out, None, None, _addr(to), None)]
    if sel == _V3_EXACT_OUTPUT_SINGLE:
        ((tin, tout, fee, to, deadline, amount_out, max_in, _),) = abi_decode(["(address,address,uint24,address,uint256,uint256,uint256,uint160)"], body)
        return [IntendedSwap("uniswap_v3", router, [_addr(tin), _addr(tout)], [fee], "out", None, None, amount_out, max_in, _addr(to), deadline)]
    if sel == _R2_EXACT_OUTPUT_SINGLE:
        ((tin, tout, fee, to, amount_out, max_in, _),) = abi_decode(["(address,address,uint24,address,uint256,uint256,uint160)"], body)
        return [IntendedSwap("uniswap_v3", router, [_addr(tin), _addr(tout)], [fee], "out", None, None, amount_out, max_in, _addr(to), None)]
    if sel == _V3_EXACT_INPUT:
        ((path, to, deadline, amount_in, min_out),) = abi_decode(["(bytes,address,uint256,uint256,uint256)"], body)
        tokens, fees = v3_path(path)
        return [IntendedSwap("uniswap_v3", router, tokens, fees, "in", amount_in, min_out, None, None, _addr(to), deadline)]
    if sel == _R2_EXACT_INPUT:
        ((path, to, amount_in, min_out),) = abi_decode(["(bytes,address,uint256,uint256)"], body)
        tokens, fees = v3_path(path)
        return [IntendedSwap("uniswap_v3", router, tokens, fees, "in", amount_in, min_out, None, None, _addr(to), None)]
    if sel in (_V3_EXACT_OUTPUT, _R2_EXACT_OUTPUT):
        if sel == _V3_EXACT_OUTPUT:
            ((path, to, deadline, amount_out, max_in),) = abi_decode(["(bytes,address,uint256,uint256,uint256)"], body)
        else:
            ((path, to, amount_out, max_in),) = abi_decode(["(bytes,address,uint256,uint256)"], body)
            deadline = None
        tokens, fees = v3_path(path)  # exact-output paths are encoded from the output token back
        return [IntendedSwap("uniswap_v3", router, tokens[::-1], fees[::-1], "out", None, None, amount_out, max_in, _addr(to), deadline)]
    if sel in (_MULTICALL, _MULTICALL_DEADLINE, _MULTICALL_BLOCKHASH):
        if sel == _MULTICALL:
            (calls,) = abi_decode(["bytes[]"], body)
            deadline = None
        else:
            deadline, calls = abi_decode(["uint256" if sel == _MULTICALL_DEADLINE else "bytes32", "bytes[]"], body)
        out: list[IntendedSwap] = []
        for c in calls:
            for s in decode_pending(router, "0x" + c.hex(), value, depth + 1):
                if s.deadline is None and isinstance(deadline, int):
                    s.deadline = deadline
                out.append(s)
        return out
    if sel == _DIRECT_LEG:
        pair, token_in, amount_in, min_out = abi_decode(["address", "address", "uint256", "uint256"], body)
        # the output token is the pair's other token: the caller resolves it from the pool
        return [IntendedSwap("uniswap_v2", router, [_addr(token_in)], [], "in", amount_in, min_out, None, None,
                             router, None, pool=_addr(pair), extra={"direct": True})]
    if sel in (_UR_EXECUTE, _UR_EXECUTE_NO_DEADLINE):
        if sel == _UR_EXECUTE:
            commands, inputs, deadline = abi_decode(["bytes", "bytes[]", "uint256"], body)
        else:
            commands, inputs = abi_decode(["bytes", "bytes[]"], body)
            deadline = None
        return _universal(router, commands, inputs, deadline, value)
    return []


def _universal(router: str, commands: bytes, inputs: list[bytes], deadline: int | None, value: int) -> list[IntendedSwap]:
    out = []
    for cmd, inp in zip(commands, inputs):
        c = cmd & 0x3F
        if c in (UR_V3_SWAP_EXACT_IN, UR_V3_SWAP_EXACT_OUT):
            to, a, b, path, _payer = abi_decode(["address", "uint256", "uint256", "bytes", "bool"], inp)
            tokens, fees = v3_path(path)
            if c == UR_V3_SWAP_EXACT_IN:
                out.append(IntendedSwap("uniswap_v3", router, tokens, fees, "in", a, b, None, None, _addr(to), deadline))
            else:
                out.append(IntendedSwap("uniswap_v3", router, tokens[::-1], fees[::-1], "out", None, None, a, b, _addr(to), deadline))
        elif c in (UR_V2_SWAP_EXACT_IN, UR_V2_SWAP_EXACT_OUT):
            to, a, b, path, _payer = abi_decode(["address", "uint256", "uint256", "address[]", "bool"], inp)
            p = [_addr(x) for x in path]
            if c == UR_V2_SWAP_EXACT_IN:
                out.append(IntendedSwap("uniswap_v2", router, p, [], "in", a, b, None, None, _addr(to), deadline))
            else:
                out.append(IntendedSwap("uniswap_v2", router, p, [], "out", None, None, a, b, _addr(to), deadline))
    return out
