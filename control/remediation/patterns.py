"""Parameter patterns, matched in time linear in the value whatever the commands file says.

Python's `re` backtracks: `^(a+)+$` against "aaa…a!" takes time exponential in the value's
length, `^a*a*a*…b$` polynomial of high degree. The commands file is written by hand and the
values come from clients and alert labels, so the whitelist never gives them to `re`'s matcher.
It reads a pattern with `re`'s own parser (the syntax and meaning stay Python's), builds a
Thompson NFA from the parse tree and simulates that: O(len(value) * states), no backtracking.
`split` does the same for an argv element holding several placeholders, so cutting a token
into values is linear too, however ambiguous the patterns.

What only backtracking can do is refused when the file loads (`PatternError`): backreferences,
lookarounds, conditionals, atomic groups, possessive quantifiers, word boundaries, and `^`/`$`
anywhere but at the value's start and end. Counted repeats are unrolled (`x{0,127}` is 127
states), so a pattern may hold at most MAX_STATES states.

Over 300 lines: the compiler and the two simulations (`fullmatch`, `split`) share the NFA's
representation; apart, each would reach into the others' internals.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

# `re`'s parser is private but has been the stdlib's own since Python 1.6 (it was `sre_parse`,
# now a deprecated alias); using it means a pattern means here exactly what it means to `re`.
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

# A value is at most 255 characters, so `{0,255}` (511 states) is the largest useful count.
MAX_STATES = 512
_STRIDE = 1 << 16  # packs (segment, offset) into one int; offsets stay below it
# Memoised transitions per pattern (the lazy DFA in `fullmatch`); past this, steps are computed.
_CACHE_LIMIT = 4096
ACCEPT = 0  # the accepting state of every compiled pattern

_ASCII = frozenset(chr(code) for code in range(128))
_DIGIT = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r\f\v")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CATEGORIES = {
    "CATEGORY_DIGIT": _DIGIT,
    "CATEGORY_NOT_DIGIT": _ASCII - _DIGIT,
    "CATEGORY_SPACE": _SPACE,
    "CATEGORY_NOT_SPACE": _ASCII - _SPACE,
    "CATEGORY_WORD": _WORD,
    "CATEGORY_NOT_WORD": _ASCII - _WORD,
}
_REFUSED = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a lookahead or lookbehind",
    "ASSERT_NOT": "a lookahead or lookbehind",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive quantifier",
}
_START_ANCHORS = {"AT_BEGINNING", "AT_BEGINNING_STRING"}
_END_ANCHORS = {"AT_END", "AT_END_STRING"}


class PatternError(ValueError):
    """Why a pattern cannot be matched in linear time (the commands file is then refused)."""


class ParamPattern:
    """A compiled parameter pattern: `fullmatch` runs in time linear in the value.

    States are numbered; ACCEPT (0) is the accepting one. `start` holds the states live before
    the first character; `after[s]` those live once consuming state `s` took its character.
    Characters outside ASCII never match a class, `.` or a negation: values are ASCII.
    """

    def __init__(
        self,
        pattern: str,
        chars: list[frozenset[str] | None],
        start: frozenset[int],
        after: dict[int, frozenset[int]],
    ) -> None:
        self.pattern = pattern
        self.states = len(chars)
        self.start = start
        self.after = after
        self.chars = chars
        # `after`, split for `split`'s inner loop: the consuming states, and whether ACCEPT.
        self.nexts = {s: tuple(sorted(t for t in live if t != ACCEPT)) for s, live in after.items()}
        self.ends = {s: ACCEPT in live for s, live in after.items()}
        # A lazy DFA: the NFA's step from a set of live states, memoised by (states, char).
        self._dfa: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def accepts(self, state: int, char: str) -> bool:
        """Whether consuming state `state` takes `char`."""
        chars = self.chars[state]
        return chars is not None and char in chars

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of `value` matches, as `re.fullmatch` would say."""
        current = self.start
        for char in value:
            key = (current, char)
            following = self._dfa.get(key)
            if following is None:
                following = self.step(current, char)
                if len(self._dfa) < _CACHE_LIMIT:
                    self._dfa[key] = following
            if not following:
                return False
            current = following
        return ACCEPT in current

    def step(self, states: Iterable[int], char: str) -> frozenset[int]:
        """The live states after `char`, from live states `states` (NFA simulation)."""
        following: set[int] = set()
        for state in states:
            if state != ACCEPT and self.accepts(state, char):
                following |= self.after[state]
        return frozenset(following)


def compile_pattern(pattern: str) -> ParamPattern:
    """Compile `pattern` (already known to compile with `re`, ASCII) for linear matching.

    Raises PatternError naming what cannot be matched without backtracking, or a pattern
    too large once its counted repeats are unrolled.
    """
    parsed = _parser.parse(pattern, re.ASCII)
    builder = _Builder()
    entry = builder.sequence(parsed.data, ACCEPT, parsed.state.flags)
    builder.check_anchors()
    after = {
        state: builder.closure(builder.out[state])
        for state, chars in enumerate(builder.chars)
        if chars is not None
    }
    return ParamPattern(pattern, builder.chars, builder.closure([entry]), after)


def split(segments: Sequence[str | ParamPattern], token: str, longest: int) -> list[str] | None:
    """Cut `token` into literal text and one value per pattern, in the order of `segments`.

    Returns the values (each at most `longest` characters and matching its pattern) or None
    when no cut exists. A Pike VM: every way of reading the token advances together, one
    character at a time, so the work is linear in the token whatever the patterns.
    """
    # A thread is a place: its segment, and an offset into a literal or an NFA state, as one
    # int (segment * _STRIDE + offset). Its payload is where each segment so far began. Two
    # threads at the same place behave alike from now on, except that the one whose current
    # value began later has more room under `longest`: that one is kept.
    last = len(segments)
    end = len(token)
    if sum(len(part) for part in segments if isinstance(part, str)) >= end:
        return None  # no room left for values (and offsets stay far below _STRIDE)
    found: list[tuple[int, ...]] = []
    entries = [
        [0] if isinstance(part, str) else sorted(s for s in part.start if s != ACCEPT)
        for part in segments
    ]

    def enter(segment: int, pos: int, starts: tuple[int, ...], into: dict[int, Any]) -> None:
        starts = (*starts, pos)
        if segment == last:
            if pos == end:
                found.append(starts)
            return
        base = segment * _STRIDE
        for place in entries[segment]:
            held = into.get(base + place)
            if held is None or held[-1] < pos:
                into[base + place] = starts

    threads: dict[int, tuple[int, ...]] = {}
    enter(0, 0, (), threads)
    for pos, char in enumerate(token):
        following: dict[int, tuple[int, ...]] = {}
        for place, starts in threads.items():
            segment, offset = divmod(place, _STRIDE)
            part = segments[segment]
            if isinstance(part, str):
                if part[offset] != char:
                    continue
                if offset + 1 == len(part):
                    enter(segment + 1, pos + 1, starts, following)
                    continue
                targets: Sequence[int] = (offset + 1,)
                ends = False
            else:
                chars = part.chars[offset]
                if chars is None or char not in chars or pos + 1 - starts[-1] > longest:
                    continue
                targets, ends = part.nexts[offset], part.ends[offset]
                if ends:
                    enter(segment + 1, pos + 1, starts, following)
            base = segment * _STRIDE
            for target in targets:
                held = following.get(base + target)
                if held is None or held[-1] < starts[-1]:
                    following[base + target] = starts
        threads = following
        if not threads:
            break
    if not found:
        return None
    starts = found[0]
    # starts[i] is where segment i began; starts[len(segments)] is the token's end.
    return [
        token[starts[index] : starts[index + 1]]
        for index, part in enumerate(segments)
        if not isinstance(part, str)
    ]


class _Builder:
    """Builds the NFA right to left: each node is compiled knowing the state that follows it."""

    def __init__(self) -> None:
        # Per state: the characters it consumes, or None for a state that consumes nothing.
        self.chars: list[frozenset[str] | None] = []
        self.out: list[list[int]] = []
        self.anchors: dict[int, str] = {}
        self.new(None, [])  # ACCEPT, state 0

    def new(self, chars: frozenset[str] | None, out: list[int]) -> int:
        if len(self.chars) >= MAX_STATES:
            raise PatternError(
                f"is too large: over {MAX_STATES} states once its counted repeats are "
                "unrolled (write x+ or a smaller count)"
            )
        self.chars.append(chars)
        self.out.append(out)
        return len(self.chars) - 1

    def sequence(self, items: Sequence[tuple[Any, Any]], following: int, flags: int) -> int:
        for op, av in reversed(list(items)):
            following = self.node(op, av, following, flags)
        return following

    def node(self, op: Any, av: Any, following: int, flags: int) -> int:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return self.new(_charset(name, av, flags), [following])
        if name == "SUBPATTERN":
            _group, add, remove, inner = av
            return self.sequence(inner.data, following, (flags | add) & ~remove)
        if name == "BRANCH":
            return self.new(None, [self.sequence(alt.data, following, flags) for alt in av[1]])
        if name in ("MAX_REPEAT", "MIN_REPEAT"):  # lazy or greedy: the same language
            return self.repeat(av, following, flags)
        if name == "AT":
            anchor = str(av)
            if anchor not in _START_ANCHORS | _END_ANCHORS:
                raise PatternError("uses a word boundary (\\b or \\B), which is not supported")
            state = self.new(None, [following])
            self.anchors[state] = "start" if anchor in _START_ANCHORS else "end"
            return state
        what = _REFUSED.get(name, f"the construct {name}")
        raise PatternError(f"uses {what}, which cannot be matched without backtracking")

    def repeat(self, av: tuple[int, int, Any], following: int, flags: int) -> int:
        low, high, item = av
        if high == _c.MAXREPEAT:
            loop = self.new(None, [])
            self.out[loop] = [self.sequence(item.data, loop, flags), following]
            entry = loop
        else:
            # x{0,n} as (x(x(…)?)?)?: skipping always leaves the repeat, so no two paths
            # read the same characters (x?x?x? would be ambiguous, and larger).
            entry = following
            for _ in range(high - low):
                entry = self.new(None, [self.sequence(item.data, entry, flags), following])
        for _ in range(low):
            entry = self.sequence(item.data, entry, flags)
        return entry

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        """The consuming states (and ACCEPT) reachable from `states` without consuming."""
        seen: set[int] = set()
        pending = list(states)
        live: set[int] = set()
        while pending:
            state = pending.pop()
            if state in seen:
                continue
            seen.add(state)
            if self.chars[state] is not None or state == ACCEPT:
                live.add(state)
            else:
                pending.extend(self.out[state])
        return frozenset(live)

    def check_anchors(self) -> None:
        """`^` only where nothing was read yet, `$` only where nothing more can be read.

        The simulation treats anchors as always true, which is right only there (and `re`'s
        `$` before a final newline cannot matter: values are printable, without newlines).
        """
        consumed = self._reachable(
            [t for s, c in enumerate(self.chars) if c is not None for t in self.out[s]],
            self.out,
        )
        if any(kind == "start" and s in consumed for s, kind in self.anchors.items()):
            raise PatternError("uses ^ after the start of the value, which never matches")
        reverse: list[list[int]] = [[] for _ in self.chars]
        for state, targets in enumerate(self.out):
            for target in targets:
                reverse[target].append(state)
        accepting = self._reachable([ACCEPT], reverse)
        consuming_into_accept = [
            s for s, c in enumerate(self.chars) if c is not None and self.out[s][0] in accepting
        ]
        before_reading = self._reachable(consuming_into_accept, reverse)
        if any(kind == "end" and s in before_reading for s, kind in self.anchors.items()):
            raise PatternError("uses $ before the end of the value, which never matches")

    @staticmethod
    def _reachable(starts: Iterable[int], edges: list[list[int]]) -> set[int]:
        seen: set[int] = set()
        pending = list(starts)
        while pending:
            state = pending.pop()
            if state not in seen:
                seen.add(state)
                pending.extend(edges[state])
        return seen


def _charset(name: str, av: Any, flags: int) -> frozenset[str]:
    """The ASCII characters one character node accepts, as `re` reads it with these flags."""
    ignore_case = bool(flags & re.IGNORECASE)
    if name == "ANY":
        return _ASCII if flags & re.DOTALL else _ASCII - {"\n"}
    if name in ("LITERAL", "NOT_LITERAL"):
        chars = _case_closed(frozenset(chr(av)), ignore_case)
        return chars if name == "LITERAL" else _ASCII - chars
    chars_: set[str] = set()
    negate = False
    for op, value in av:
        kind = str(op)
        if kind == "NEGATE":
            negate = True
        elif kind == "LITERAL":
            chars_.add(chr(value))
        elif kind == "RANGE":
            chars_.update(chr(code) for code in range(value[0], min(value[1], 127) + 1))
        elif kind == "CATEGORY":
            chars_ |= _CATEGORIES[str(value)]
        else:
            raise PatternError(f"uses the class item {kind}, which is not supported")
    chars = _case_closed(frozenset(chars_) & _ASCII, ignore_case)
    return _ASCII - chars if negate else chars


def _case_closed(chars: frozenset[str], ignore_case: bool) -> frozenset[str]:
    # re with IGNORECASE compares lower-cased characters: for ASCII, both cases of a letter.
    if not ignore_case:
        return chars
    return chars | {c.swapcase() for c in chars if c.isascii() and c.isalpha()}
