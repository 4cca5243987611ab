"""BM25 retrieval over product text with tantivy, held in memory and updated in place."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import tantivy

from engine.serving.synonyms import SYNONYM_BOOST, Expansion, SynonymTable

TEXT_FIELDS = ("title", "brand", "bullet_points", "description", "category")
# Title and brand say what a product is; long descriptions mention many things in passing.
FIELD_BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "bullet_points": 1.0, "description": 0.5}
FUZZY_FIELDS = ("title", "brand", "category")
FUZZY_MIN_CHARS = 4
_QUERY_SYNTAX = re.compile(r"[^\w\s]+", re.UNICODE)
STOPWORDS = frozenset("a an and are as at be by for from in into is it of on or the to with without".split())
_OPERATORS = re.compile(r"\b(AND|OR|NOT|IN|TO)\b")


@dataclass(frozen=True)
class LexicalDoc:
    """The fields of a product that the lexical index reads."""

    id: int
    title: str
    brand: str = ""
    bullet_points: str = ""
    description: str = ""
    category: str = ""
    price: float | None = None
    rating: float | None = None


@dataclass(frozen=True)
class Filters:
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    rating_min: float | None = None

    def is_empty(self) -> bool:
        return not self.brands and self.price_min is None and self.price_max is None and self.rating_min is None

    def reads_numbers(self) -> bool:
        """Whether a product's price or rating decides if it passes (its words do not suffice)."""
        return self.price_min is not None or self.price_max is not None or self.rating_min is not None


@dataclass
class LexicalResult:
    hits: list[tuple[int, float]]  # (product id, BM25 score), best first
    total: int
    fuzzy: bool = False
    brand_counts: dict[str, int] = field(default_factory=dict)
    # The hits that match the query (all words, most words of a long query, or every word within
    # one edit), and how many products do: the widened "any word" steps find related products only.
    matching: frozenset[int] = frozenset()
    matching_total: int = 0


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", stored=True, indexed=True, fast=True)
    for name in TEXT_FIELDS:
        builder.add_text_field(name, tokenizer_name="en_stem")
    # Raw, fast copy of the brand for exact filters and facet counts.
    builder.add_text_field("brand_exact", tokenizer_name="raw", fast=True)
    builder.add_float_field("price", indexed=True, fast=True)
    builder.add_float_field("rating", indexed=True, fast=True)
    return builder.build()


def clean_query(text: str) -> str:
    """Strip query-language syntax so any shopper input parses as plain words."""
    return _OPERATORS.sub(lambda m: m.group(0).lower(), _QUERY_SYNTAX.sub(" ", text)).strip()


class LexicalIndex:
    """An in-memory tantivy index; one per web worker, so no writer lock is shared."""

    def __init__(self, fuzzy_min_hits: int = 5, fuzzy_distance: int = 1) -> None:
        self._schema = _schema()
        self._index = tantivy.Index(self._schema)
        self._writer = self._index.writer(heap_size=50_000_000, num_threads=1)
        self._write_lock = threading.Lock()
        self.fuzzy_min_hits = fuzzy_min_hits
        self.fuzzy_distance = fuzzy_distance
        # Swapped whole by the serving follower (webapp.services.merchandising); a search reads it once.
        self.synonyms = SynonymTable()

    def _document(self, doc: LexicalDoc) -> tantivy.Document:
        values: dict = {"id": doc.id, "brand_exact": doc.brand or ""}
        for name in TEXT_FIELDS:
            values[name] = getattr(doc, name) or ""
        if doc.price is not None:
            values["price"] = float(doc.price)
        if doc.rating is not None:
            values["rating"] = float(doc.rating)
        return tantivy.Document(**values)

    def upsert(self, docs: Iterable[LexicalDoc], removed_ids: Iterable[int] = ()) -> int:
        """Replace or add documents and drop removed ones; visible to searches on return."""
        count = 0
        with self._write_lock:
            for product_id in removed_ids:
                self._writer.delete_documents_by_term("id", int(product_id))
            for doc in docs:
                self._writer.delete_documents_by_term("id", doc.id)
                self._writer.add_document(self._document(doc))
                count += 1
            self._writer.commit()
            self._index.reload()
        return count

    @property
    def num_docs(self) -> int:
        return self._index.searcher().num_docs

    def _filter_clauses(self, filters: Filters, with_brand: bool = True) -> list:
        clauses = []
        if with_brand and filters.brands:
            brand_terms = [tantivy.Query.term_query(self._schema, "brand_exact", b) for b in filters.brands]
            clauses.append(
                (tantivy.Occur.Must, tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in brand_terms]))
            )
        if filters.price_min is not None or filters.price_max is not None:
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self._schema, "price", tantivy.FieldType.Float, filters.price_min, filters.price_max
                    ),
                )
            )
        if filters.rating_min is not None:
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self._schema, "rating", tantivy.FieldType.Float, filters.rating_min, None
                    ),
                )
            )
        return clauses

    def _word_query(self, word: str, fuzzy: bool) -> tantivy.Query:
        query, _errors = self._index.parse_query_lenient(word, list(TEXT_FIELDS), field_boosts=FIELD_BOOSTS)
        if not fuzzy or len(word) < FUZZY_MIN_CHARS:  # one edit on a short word matches nearly anything
            return query
        near, _errors = self._index.parse_query_lenient(
            word, list(FUZZY_FIELDS), fuzzy_fields={name: (False, self.fuzzy_distance, True) for name in FUZZY_FIELDS}
        )
        # Exact matches keep their BM25 weight; near spellings (constant score) rank behind them.
        return tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, query),
                (tantivy.Occur.Should, tantivy.Query.boost_query(near, 0.5)),
            ]
        )

    def _term_query(self, words: tuple[str, ...], fuzzy: bool) -> tantivy.Query:
        if len(words) == 1:
            return self._word_query(words[0], fuzzy)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, self._word_query(w, fuzzy)) for w in words])

    def _expanded(self, expansion: Expansion, fuzzy: bool) -> tantivy.Query:
        """The typed term, or it or one of its synonyms at SYNONYM_BOOST (typed words outrank synonyms)."""
        typed = self._term_query(expansion.words, fuzzy)
        if not expansion.alternatives:
            return typed
        alternatives = [
            (tantivy.Occur.Should, tantivy.Query.boost_query(self._term_query(tuple(a.split()), False), SYNONYM_BOOST))
            for a in expansion.alternatives
        ]
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, typed), *alternatives])

    def _text_query(self, words: str, fuzzy: bool, strict: bool, synonyms: SynonymTable | None = None) -> tantivy.Query:
        """Content words must mostly match (like minimum_should_match); stopwords only add score.

        With synonyms, a term of the table (one or more typed words) counts as one word that
        its synonyms also satisfy.
        """
        tokens = words.lower().split()
        content = [t for t in tokens if t not in STOPWORDS] or tokens
        extra = [t for t in tokens if t in STOPWORDS and t not in content]
        groups = synonyms.group(content) if synonyms else [Expansion((t,)) for t in content]
        # Short queries need every word; longer ones tolerate a missing word or two.
        needed = (len(groups) if len(groups) <= 2 else math.ceil(0.6 * len(groups))) if strict else 1
        core = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, self._expanded(g, fuzzy)) for g in groups], minimum_number_should_match=needed
        )
        if not extra:
            return core
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, core)] + [(tantivy.Occur.Should, self._word_query(t, False)) for t in extra]
        )

    def _combine(self, text_query: tantivy.Query | None, clauses: list) -> tantivy.Query:
        parts = list(clauses)
        if text_query is not None:
            parts.append((tantivy.Occur.Must, text_query))
        if not parts:
            return tantivy.Query.all_query()
        return tantivy.Query.boolean_query(parts)

    def _brand_counts(self, searcher: tantivy.Searcher, query: tantivy.Query, size: int) -> dict[str, int]:
        agg = searcher.aggregate(query, {"brands": {"terms": {"field": "brand_exact", "size": size}}})
        buckets = agg.get("brands", {}).get("buckets", [])
        return {b["key"]: int(b["doc_count"]) for b in buckets if b["key"]}

    def search(
        self, text: str, filters: Filters | None = None, limit: int = 1000, facet_size: int = 20
    ) -> LexicalResult:
        """Top `limit` products for the words, with filters applied and brand facet counts."""
        filters = filters or Filters()
        words = clean_query(text)
        synonyms = self.synonyms  # read once: a swap mid-search must not mix two tables
        searcher = self._index.searcher()
        clauses = self._filter_clauses(filters)
        exact_query = self._text_query(words, False, True, synonyms) if words else None
        text_query, fuzzy = exact_query, False
        result = exact = matched = searcher.search(self._combine(exact_query, clauses), limit=limit, count=True)
        # Widen step by step only while too little is found: near spellings of every word,
        # then any of the words, then near spellings of any word.
        steps = ((True, True), (False, False), (True, False))
        for near, strict in steps if words and exact.count < self.fuzzy_min_hits else ():
            wider_query = self._text_query(words, near, strict, synonyms)
            wider = searcher.search(self._combine(wider_query, clauses), limit=limit, count=True)
            if wider.count > result.count:  # keep a wider step only when it found more
                text_query, result, fuzzy = wider_query, wider, near
                if strict:
                    matched = wider
            if wider.count >= self.fuzzy_min_hits:
                break
        hits = [(searcher.doc(addr)["id"][0], float(score)) for score, addr in result.hits]
        if matched is result:
            matching = frozenset(pid for pid, _ in hits)
        else:
            matching = frozenset(searcher.doc(addr)["id"][0] for _, addr in matched.hits)
        # Brand counts ignore the brand filter itself so shoppers can see and switch brands.
        facet_query = self._combine(text_query, self._filter_clauses(filters, with_brand=False))
        return LexicalResult(
            hits=hits,
            total=result.count,
            fuzzy=fuzzy,
            brand_counts=self._brand_counts(searcher, facet_query, facet_size),
            matching=matching if words else frozenset(pid for pid, _ in hits),
            matching_total=matched.count,
        )
