"""Small builders for rule tests: decoded objects shaped exactly like the decoders' output."""

from __future__ import annotations

from mevwatch.monitor.types import ORDER_STRIDE, Block, DecodedBlock, DecodeStats, LiquidityChange, Swap, Transaction, Transfer

WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
TKN = "0x1111111111111111111111111111111111111111"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
POOL = "0x2222222222222222222222222222222222222222"
POOL2 = "0x3333333333333333333333333333333333333333"
ROUTER = "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"
BOT = "0x4444444444444444444444444444444444444444"


def h(n: int) -> str:
    return "0x" + f"{n:064x}"


def a(n: int) -> str:
    return "0x" + f"{n:040x}"


def tx(pos: int, sender: str, to: str | None = None, *, fee: int = 10**9, success: bool = True, inp: str = "0x") -> Transaction:
    return Transaction(hash=h(pos + 1), position=pos, from_address=sender, to_address=to, input=inp,
                       gas_used=100_000, effective_gas_price=fee, success=success)


def swap(t: Transaction, pool: str, tin: str, tout: str, ain: int, aout: int, *, sender: str | None = None,
         recipient: str | None = None, payer: str | None = None, idx: int = 0, reserves=None, protocol="uniswap_v2") -> Swap:
    return Swap(protocol, pool, t.hash, t.position, t.position * ORDER_STRIDE + idx, sender or t.to_address or t.from_address,
                recipient or t.from_address, tin, tout, ain, aout, t.from_address, t.to_address,
                trace_address=(idx,), payer=payer, reserves_after=reserves)


def transfer(t: Transaction, token: str, frm: str, to: str, amount: int, idx: int) -> Transfer:
    return Transfer(token, frm, to, amount, t.hash, t.position, t.position * ORDER_STRIDE + idx, idx)


def liquidity(t: Transaction, kind: str, pool: str, owner: str, lo: int, hi: int, *, a0=0, a1=0, idx=0) -> LiquidityChange:
    return LiquidityChange("uniswap_v3", kind, pool, owner, owner, t.hash, t.position, t.position * ORDER_STRIDE + idx,
                           t.from_address, tick_lower=lo, tick_upper=hi, liquidity=10**18, amount0=a0, amount1=a1)


def decoded(txs: list[Transaction], swaps: list[Swap], transfers: list[Transfer] = (), liq: list[LiquidityChange] = (),
            number: int = 100, base_fee: int = 0, lending: list[str] = ()) -> DecodedBlock:
    block = Block(number, h(10**6 + number), None, 0, a(0xFEE), base_fee, txs, has_traces=True)
    return DecodedBlock(block, list(swaps), list(transfers), list(liq), {}, DecodeStats(), lending_txs=list(lending))
