"""The text a product is embedded from, shared by the worker (torch) and the web (ONNX)."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """Collapse whitespace and cut to at most limit characters, at a word boundary when one is near."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit * 0.6 else cut


def product_text(
    title: str = "",
    brand: str = "",
    category: str = "",
    bullet_points: str = "",
    description: str = "",
    max_bullets: int = 3,
    max_chars: int = 600,
) -> str:
    """Title, brand, category and the first bullet points (the description only when there are none).

    Any field may be empty; an all-empty product gives "" which still embeds (as the
    tokenizer's special tokens alone), so no product is ever left without a vector.
    """
    parts = [clip(title, 300)]
    if brand.strip():
        parts.append(f"brand: {clip(brand, 80)}")
    if category.strip():
        parts.append(f"category: {clip(category, 160)}")
    bullets = [b for b in (line.strip(" \t-•*") for line in bullet_points.splitlines()) if b]
    if bullets:
        parts.extend(clip(b, 200) for b in bullets[:max_bullets])
    elif description.strip():
        parts.append(clip(description, 300))
    return clip(". ".join(p for p in parts if p), max_chars)
