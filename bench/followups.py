"""Follow-up questions on SQuAD: retrieval hit@5 of the last turn of multi-turn chains.

Chains are built from the questions of one SQuAD paragraph (every question of a
paragraph is answered by it, so the gold paragraph of every turn is the same):

1. In each question, the *named phrases*: maximal runs of capitalized words or numbers
   (joined by "of", "the", "and", "de", ...; a question's first word only when it is
   not a question word or another common opener), e.g. "Super Bowl 50", "University of
   Chicago".
2. For each named phrase shared by at least two questions of a paragraph, in file
   order, the first question that names it opens the chain; the next one (2 turns) and
   the next two (3 turns) follow with the phrase replaced by a pronoun: "it" ("they"
   when its last word is a plural in -s; "them" after a preposition), "its"/"their" for
   a possessive, a leading "the" replaced too, capitalized at the start. The pronoun's
   gender is not modelled: "he" is "it" (BM25 drops both as stopwords). A later turn
   must keep at least one content word besides the pronoun. Not replaced (the question
   is left out): the phrase after "a"/"an", or used as an adjective ("a deterministic
   Turing machine": followed by a lower-case word, not after an auxiliary), or forming
   a compound that the paragraph has ("Huguenot refugees").
3. Each earlier turn is followed by an assistant message holding its first gold answer
   (a concise answer, as a user of a chat would see).

Every chain is scored at its last turn, on the whole kb (all 24 articles' paragraphs),
with RAG's default hybrid retrieval and the bundled MiniLM: paragraphs ranked by their
best chunk among the 15 retrieved (as ``ragkit eval squad`` ranks them), hit@5 = the
gold paragraph among the top 5. Queries:

* ``last turn``: the follow-up alone;
* ``concatenation``: every turn's text (user and assistant) and the follow-up, joined;
* ``ragkit``: ``TermCondenser``'s standalone query (the model-free default);
* ``original``: the question before its phrase was replaced (the ceiling);
* ``ragkit, original``: ``TermCondenser`` on the original question with the same history
  (what carrying costs when the question needed no context);
* ``ragkit, topic switch``: ``TermCondenser`` on the original question after the history
  of a chain of another article (what carrying costs when the user changes subject).

Settings are chosen on articles 00-11 (``--grid``) and reported on 12-23:

    python bench/followups.py --kb /tmp/h16/kb --articles 0-11 --grid
    python bench/followups.py --kb /tmp/h16/kb --articles 12-23

The kb is built on first use when the folder is empty (1,048 paragraphs, about a minute).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragkit import RAG
from ragkit.analysis import STOPWORDS, content_terms
from ragkit.eval import SquadDataset
from ragkit.eval.runner import document_scores
from ragkit.retrieval.history import TermCondenser

DATA = Path(__file__).resolve().parents[2] / "shared/bench/squad/dev-v1.1-articles-00-23.json"

_TOKEN = re.compile(r"[^\W_]+(?:[-.'’](?![sS]\b)[^\W_]+)*", re.UNICODE)
_JOINERS = {"of", "the", "and", "de", "du", "la", "von", "van", "del", "for", "in"}
_OPENERS = {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "in", "on", "at",
    "the", "a", "an", "according", "after", "before", "during", "besides", "along", "since",
    "as", "by", "for", "from", "if", "is", "are", "was", "were", "did", "does", "do",
    "to", "with", "of", "about", "approximately", "roughly", "around", "other", "than",
    "name", "aside", "apart", "under", "between", "over", "through", "within", "into",
    "although", "while", "despite", "following", "upon", "among", "against", "has", "have",
    "can", "could", "would", "should", "will", "many", "much", "some", "one", "two",
}  # fmt: skip
_PREPOSITIONS = {
    "of", "to", "in", "for", "by", "with", "from", "on", "at", "about", "against", "into",
    "than", "over", "under", "between", "among", "toward", "towards", "upon",
}  # fmt: skip
_AUXILIARIES = {
    "did", "does", "do", "was", "were", "is", "are", "has", "have", "had", "will", "can",
    "could", "would", "should", "may", "might",
}  # fmt: skip


@dataclass
class Chain:
    article: int
    gold: str  # paragraph (document) id
    turns: list[str]  # user turns as asked (later ones with the pronoun)
    answers: list[str]  # gold answers of the earlier turns
    original: str  # the last turn before its phrase was replaced
    phrase: str
    history: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for question, answer in zip(self.turns[:-1], self.answers, strict=True):
            self.history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]

    @property
    def last(self) -> str:
        return self.turns[-1]


def _capitalized(token: str) -> bool:
    return token[:1].isupper() or token[:1].isdigit()


def named_phrases(question: str) -> list[str]:
    """Maximal runs of capitalized words or numbers, joined by small words."""
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(question)]
    phrases: list[str] = []
    i = 0
    while i < len(tokens):
        word = tokens[i][0]
        first = i == 0 and word.lower() in _OPENERS | STOPWORDS
        if not _capitalized(word) or first:
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            nxt = tokens[j][0]
            if _capitalized(nxt):
                j += 1
            elif nxt.lower() in _JOINERS and j + 1 < len(tokens) and _capitalized(tokens[j + 1][0]):
                j += 2
            else:
                break
        phrase = question[tokens[i][1] : tokens[j - 1][2]]
        if not phrase.isdigit() and len(phrase) > 2:  # a bare number is rarely the subject
            phrases.append(phrase)
        i = j
    return phrases


def replace_phrase(question: str, phrase: str, context: str = "") -> str | None:
    """``question`` with ``phrase`` (and a ``the`` before it) replaced by a pronoun."""
    plural = phrase.rsplit(maxsplit=1)[-1].endswith("s") and not phrase.endswith("ss")
    pattern = re.compile(
        r"(?P<pre>\b[^\W_]+\s+)?(?P<the>\b[Tt]he\s+)?"
        + re.escape(phrase)
        + r"(?P<pos>'s\b|’s\b)?(?P<post>\s+[^\W_]+)?"
    )
    for match in pattern.finditer(question):
        pre = (match.group("pre") or "").strip().lower()
        post = (match.group("post") or "").strip()
        if pre in {"a", "an"}:
            return None  # "prior to a Super Bowl": not a reference to one thing
        modifier = post[:1].islower() and post.lower() not in STOPWORDS | _AUXILIARIES
        if not match.group("pos") and modifier and pre not in _AUXILIARIES:
            return None  # "a deterministic Turing machine": the phrase is an adjective
        if modifier and f"{phrase} {post}".lower() in context.lower():
            return None  # "did Huguenot refugees settle": a compound of the paragraph

    def pronoun(match: re.Match[str]) -> str:
        pre = match.group("pre") or ""
        if match.group("pos"):
            word = "their" if plural else "its"
        elif pre.strip().lower() in _PREPOSITIONS:
            word = "them" if plural else "it"
        else:
            word = "they" if plural else "it"
        start = match.start("the") if match.group("the") else match.start() + len(pre)
        if start == 0:
            word = word.capitalize()
        return pre + word + (match.group("post") or "")

    replaced, count = pattern.subn(pronoun, question)
    if count == 0 or replaced == question:
        return None
    left = set(content_terms(replaced)) - {"it", "they", "them", "its", "their"}
    return replaced if left else None


def build_chains(path: Path, max_turns: int = 3, scope: str = "paragraph") -> list[Chain]:
    """2- and 3-turn chains of questions sharing a named phrase: of one paragraph
    (``scope="paragraph"``), or of one article with every later turn on another
    paragraph than the first turn's (``scope="article"``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    chains: list[Chain] = []
    for number, article in enumerate(data["data"]):
        title = str(article.get("title") or f"article-{number}")
        groups: list[list[tuple[str, str, str, str]]] = []  # question, answer, gold, context
        for index, paragraph in enumerate(article["paragraphs"]):
            qas = [
                (qa["question"].strip(), qa["answers"][0]["text"], f"{title}/{index}",
                 paragraph["context"])
                for qa in paragraph["qas"]
                if qa.get("answers")
            ]  # fmt: skip
            if scope == "paragraph":
                groups.append(qas)
            elif groups:
                groups[0] += qas
            else:
                groups.append(qas)
        for qas in groups:
            chains += _chains(number, qas, max_turns, scope)
    return chains


def _chains(
    number: int, qas: list[tuple[str, str, str, str]], max_turns: int, scope: str
) -> list[Chain]:
    by_phrase: dict[str, list[int]] = {}
    for n, (question, *_rest) in enumerate(qas):
        for phrase in dict.fromkeys(named_phrases(question)):
            by_phrase.setdefault(phrase, []).append(n)
    chains = []
    used: set[int] = set()
    # longer phrases first: "Super Bowl 50" before "Super Bowl"
    for phrase in sorted(by_phrase, key=lambda p: (-len(p), p)):
        members = by_phrase[phrase]
        if len(members) < 2:
            continue
        first, rest = members[0], members[1:]
        if scope == "article":
            rest = [n for n in rest if qas[n][2] != qas[first][2]]
        replaced: list[tuple[int, str]] = []
        for n in rest:
            if n in used:
                continue
            text = replace_phrase(qas[n][0], phrase, qas[n][3])
            if text is not None:
                replaced.append((n, text))
        for length in range(2, max_turns + 1):
            if len(replaced) < length - 1:
                break
            follow = replaced[: length - 1]
            last = follow[-1][0]
            chains.append(
                Chain(
                    article=number,
                    gold=qas[last][2],
                    turns=[qas[first][0]] + [text for _n, text in follow],
                    answers=[qas[first][1]] + [qas[n][1] for n, _t in follow[:-1]],
                    original=qas[last][0],
                    phrase=phrase,
                )
            )
        used.update(n for n, _t in replaced[: max_turns - 1])
    return chains


def concatenate(question: str, history: Sequence[dict[str, str]]) -> str:
    return " ".join([*(m["content"] for m in history), question])


class Scorer:
    """hit@5 of a query for a gold paragraph, with the rankings of each query memoized."""

    def __init__(self, rag: RAG, k: int = 5) -> None:
        self.rag = rag
        self.k = k
        self.memo: dict[str, list[str]] = {}

    def ranking(self, query: str) -> list[str]:
        if query not in self.memo:
            hits = self.rag.retrieve(query, 3 * self.k)
            self.memo[query] = list(document_scores(hits, self.k))
        return self.memo[query]

    def hit(self, query: str, gold: str) -> bool:
        return gold in self.ranking(query)


Method = Callable[[Chain], str]


def methods(condenser: TermCondenser, chains: Sequence[Chain]) -> dict[str, Method]:
    # the topic switch: the history of a chain of another article, fixed by seed
    rng = random.Random(0)
    other: dict[int, Chain] = {}
    for i, chain in enumerate(chains):
        while True:
            pick = chains[rng.randrange(len(chains))]
            if pick.article != chain.article or len({c.article for c in chains}) == 1:
                other[i] = pick
                break
    index = {id(chain): i for i, chain in enumerate(chains)}
    return {
        "last turn": lambda c: c.last,
        "concatenation": lambda c: concatenate(c.last, c.history),
        "ragkit": lambda c: condenser.condense(c.last, c.history),
        "original (ceiling)": lambda c: c.original,
        "ragkit, original question": lambda c: condenser.condense(c.original, c.history),
        "ragkit, topic switch": lambda c: condenser.condense(
            c.original, other[index[id(c)]].history
        ),
    }


def evaluate(
    scorer: Scorer, chains: Sequence[Chain], named: dict[str, Method]
) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for name, method in named.items():
        row: dict[str, float] = {}
        for turns in (2, 3, None):
            chosen = [c for c in chains if turns is None or len(c.turns) == turns]
            hits = sum(scorer.hit(method(c), c.gold) for c in chosen)
            row["all" if turns is None else f"{turns} turns"] = hits / len(chosen) if chosen else 0
        table[name] = row
    return table


def _articles(spec: str) -> range:
    first, _, last = spec.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--kb", required=True, help="kb folder holding the SQuAD paragraphs")
    parser.add_argument("--articles", default="12-23", help="article numbers, e.g. 0-11")
    parser.add_argument("--grid", action="store_true", help="search TermCondenser settings")
    parser.add_argument(
        "--scope",
        choices=["paragraph", "article"],
        default="paragraph",
        help="chain questions of one paragraph, or of one article across paragraphs",
    )
    parser.add_argument("--max-terms", type=int, default=None)
    parser.add_argument("--decay", type=float, default=None)
    parser.add_argument("--answer-weight", type=float, default=None)
    parser.add_argument("--always-carry", action="store_true", help="require_reference=False")
    parser.add_argument("--show", type=int, default=0, help="print N example chains")
    parser.add_argument(
        "--llm",
        action="store_true",
        help="add a row for LLMCondenser with the bundled SmolLM2 (LlamaCppGenerator, 1 thread)",
    )
    parser.add_argument("--output", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)

    articles = _articles(args.articles)
    chains = [c for c in build_chains(args.data, scope=args.scope) if c.article in articles]
    counts = {n: sum(len(c.turns) == n for c in chains) for n in (2, 3)}
    print(
        f"{args.scope} chains, articles {args.articles}: {len(chains)} chains "
        f"({counts[2]} of 2 turns, {counts[3]} of 3), {len({c.gold for c in chains})} paragraphs"
    )
    for chain in chains[: args.show]:
        print(" |", " -> ".join(chain.turns), f"[{chain.phrase}]")

    options = {
        key: value
        for key, value in (
            ("max_terms", args.max_terms),
            ("decay", args.decay),
            ("answer_weight", args.answer_weight),
            ("require_reference", False if args.always_carry else None),
        )
        if value is not None
    }
    began = time.time()
    with RAG(args.kb) as rag:
        if rag.store.count() == 0:
            rag.add(SquadDataset(args.data).documents())
        scorer = Scorer(rag)
        if args.grid:
            grid(scorer, chains)
        condenser = TermCondenser(**options)
        named = methods(condenser, chains)
        if args.llm:
            from ragkit.generation import LlamaCppGenerator
            from ragkit.retrieval.history import LLMCondenser

            llm = LLMCondenser(LlamaCppGenerator(n_threads=1, max_tokens=48))
            rewrites = {id(c): llm.condense(c.last, c.history) for c in chains}
            for chain in chains[: args.show]:
                print(" | LLM:", chain.last, "->", rewrites[id(chain)])
            named["ragkit, LLMCondenser (SmolLM2-135M)"] = lambda c: rewrites[id(c)]
        table = evaluate(scorer, chains, named)
    print(
        f"TermCondenser(max_terms={condenser.max_terms}, decay={condenser.decay}, "
        f"answer_weight={condenser.answer_weight}, min_weight={condenser.min_weight}, "
        f"require_reference={condenser.require_reference})"
    )
    print(f"| query | {' | '.join(next(iter(table.values())))} |")
    for name, row in table.items():
        print(f"| {name} | {' | '.join(f'{v:.3f}' for v in row.values())} |")
    print(f"{time.time() - began:.0f} s", file=sys.stderr)
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "articles": args.articles,
                    "scope": args.scope,
                    "chains": len(chains),
                    "counts": counts,
                    "settings": options,
                    "hit@5": table,
                },
                indent=2,
            )
        )
    return 0


def grid(scorer: Scorer, chains: Sequence[Chain]) -> None:
    """Coordinate search of TermCondenser's settings: the mean of hit@5 on the
    follow-ups and on the topic switches (carrying must help the one and not hurt the
    other)."""
    best: dict[str, float | bool] = {
        "max_terms": 8,
        "decay": 0.5,
        "answer_weight": 0.5,
        "min_weight": 0.2,
        "require_reference": False,
    }
    space: dict[str, list[float | bool]] = {
        "answer_weight": [0.0, 0.25, 0.5, 1.0],
        "decay": [0.0, 0.3, 0.5, 0.7, 1.0],
        "max_terms": [3, 5, 8, 12, 20],
        "min_weight": [0.0, 0.2, 0.4],
        "require_reference": [False, True],
    }
    for round_ in range(2):
        for key, values in space.items():
            scores = {}
            for value in values:
                condenser = TermCondenser(**{**best, key: value})  # type: ignore[arg-type]
                named = methods(condenser, chains)
                follow, switch = named["ragkit"], named["ragkit, topic switch"]
                a = sum(scorer.hit(follow(c), c.gold) for c in chains) / len(chains)
                b = sum(scorer.hit(switch(c), c.gold) for c in chains) / len(chains)
                scores[value] = ((a + b) / 2, a, b)
            print(
                f"  {key}: "
                + ", ".join(f"{v}: {m:.3f} ({a:.3f}/{b:.3f})" for v, (m, a, b) in scores.items())
            )
            best[key] = max(scores, key=lambda v: (scores[v][0], v == best[key]))
        print(f"  best after round {round_ + 1}: {best}")


if __name__ == "__main__":
    raise SystemExit(main())
