"""The Merkle tree of an attestation batch, and inclusion proofs.

The tree of RFC 9162 (Certificate Transparency v2, section 2.1) with keccak-256:

- leaf hash  = keccak256(0x00 || canonical alert bytes)
- node hash  = keccak256(0x01 || left || right)
- a tree of n > 1 leaves splits at k, the largest power of two below n: the left
  subtree holds leaves [0, k), the right one [k, n). One leaf: its leaf hash.

Leaves are the batch's alerts sorted by alert id (as lowercase hex strings). The
different prefixes keep a leaf from ever being read as a node. A proof is the audit
path of RFC 9162 section 2.1.3: the sibling hashes from the leaf up, with the leaf's
index and the tree size, and is checked with the algorithm of section 2.1.3.2.
"""

from __future__ import annotations

from eth_hash.auto import keccak


def leaf_hash(data: bytes) -> bytes:
    return keccak(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return keccak(b"\x01" + left + right)


def levels_of(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last (bottom-up over complete pairs, an odd
    node carried up unchanged: the same tree as RFC 9162's recursive split)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def root_of(leaves: list[bytes]) -> bytes:
    """Merkle tree hash over leaf hashes (not raw data)."""
    return levels_of(leaves)[-1][0]


def path_in(levels: list[list[bytes]], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` from precomputed levels: sibling hashes, bottom up (RFC 9162 PATH)."""
    if not 0 <= index < len(levels[0]):
        raise IndexError(f"leaf {index} outside a tree of {len(levels[0])}")
    path: list[bytes] = []
    i = index
    for level in levels[:-1]:
        sib = i ^ 1
        if sib < len(level):
            path.append(level[sib])
        i //= 2
    return path


def path_of(leaves: list[bytes], index: int) -> list[bytes]:
    """Audit path of one leaf (builds the tree; use :class:`Tree` for many proofs)."""
    return path_in(levels_of(leaves), index)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def verify_path(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` lead from ``leaf`` at ``index`` to ``root``?
    Only integers ``0 <= index < size`` and 32-byte hashes are accepted (anything else: False)."""
    if not (_is_int(index) and _is_int(size) and 0 <= index < size):
        return False
    if any(not isinstance(h, bytes) or len(h) != 32 for h in (leaf, root, *path)):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


class Tree:
    """A batch's tree, built once: its root and every leaf's proof."""

    def __init__(self, leaves: list[bytes]):
        self.leaves = list(leaves)
        self.levels = levels_of(self.leaves)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        return path_in(self.levels, index)
