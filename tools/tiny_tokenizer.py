"""A tiny Gemma-style tokenizer.json for the test models.

Same pipeline as the real PaliGemma tokenizer (transformers' GemmaTokenizer):
normalizer Replace(" " -> "▁"), pre-tokenizer Split(" ", merged_with_previous),
BPE with byte fallback and fuse_unk, decoder Replace("▁" -> " ") +
ByteFallback + Fuse, no post-processor (PaliGemma's processor adds <bos>
itself). Only the vocabulary is small, and every id is somewhere else than
in the real tokenizer, so no Go code can get away with hard-coded ids:

  0..255      <0x00>..<0xFF> byte-fallback tokens
  256..       single characters ("▁", "\\n", letters, digits, punctuation)
  then        <loc0000>..<loc1023>, <seg000>..<seg127>
  then        <unk>, <pad>, <start_of_turn>, <end_of_turn>, <eos>, <bos>,
              <image>, <mask> (specials in the middle of the vocabulary)
  then        the merged word pieces of a small English vocabulary, learned
              by a deterministic BPE (most frequent pair, ties by the pair's
              text), until every vocabulary word is one token in both forms
              ("cat" and "▁cat")

"\\n" is a token of its own (no merge ever touches it), as in Gemma.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers  # noqa: F401
from tokenizers.models import BPE

SPACE = "▁"

# Task words, captions and answers, object names, colours, shapes,
# positions, numbers. A demo model can extend this list (build(words=...)).
WORDS = """
caption describe ocr answer question detect segment en de fr es
a an the of and or in on at to with without is are was it this that there
here what which who where how many much color colour shape image picture
photo scene style art painting drawing text sign word letter number
one two three four five six seven eight nine ten zero
left right top bottom middle center centre above below behind front
near next beside between over under inside outside corner edge
big small large tiny little tall short long wide round square flat
red green blue yellow orange purple pink brown black white gray grey
dark light bright pale
circle square triangle star diamond rectangle ellipse line dot stripe
cat dog person man woman child boy girl people bird horse cow sheep
car bus truck bike bicycle boat train plane tree flower grass sky cloud
sun moon water sea beach road street house building window door wall
table chair bed cup bottle book phone shoe hat shirt ball box bag
background foreground object objects thing things some no yes
standing sitting lying running walking flying looking holding
; , . ? !
""".split()

CHARS = (
    [SPACE, "\n"]
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    + [chr(c) for c in range(ord("0"), ord("9") + 1)]
    + list(".,;:!?'\"-()/&+*=%#@_<>[]")
)

LOC_TOKENS = [f"<loc{i:04d}>" for i in range(1024)]
SEG_TOKENS = [f"<seg{i:03d}>" for i in range(128)]
SPECIALS = ["<unk>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>", "<image>", "<mask>"]


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Deterministic BPE: merge the most frequent adjacent pair (ties broken
    by the pair's text) until every word form is a single symbol."""
    forms = sorted({w for word in words for w in (word, SPACE + word)})
    seqs = [list(f) for f in forms]
    merges: list[tuple[str, str]] = []
    while True:
        counts: Counter[tuple[str, str]] = Counter()
        for s in seqs:
            for pair in zip(s, s[1:]):
                counts[pair] += 1
        if not counts:
            return merges
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for i, s in enumerate(seqs):
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and (s[j], s[j + 1]) == best:
                    out.append(joined)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out


def _vocab_tiny(merges: list[tuple[str, str]]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for token in [f"<0x{b:02X}>" for b in range(256)] + CHARS + LOC_TOKENS + SEG_TOKENS + SPECIALS \
            + [a + b for a, b in merges]:
        vocab.setdefault(token, len(vocab))
    return vocab


def _vocab_gemma(merges: list[tuple[str, str]]) -> dict[str, int]:
    """The real PaliGemma id layout (for the full-size benchmark model):
    <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4, <start_of_turn> 106,
    <end_of_turn> 107, "\n" 108, loc 256000.., seg 257024.., <image> 257152;
    unused ids are filled with <unusedN>."""
    vocab: dict[str, int] = {}

    def fill_to(n: int) -> None:
        while len(vocab) < n:
            vocab[f"<unused{len(vocab)}>"] = len(vocab)

    for t in ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"):
        vocab[t] = len(vocab)
    fill_to(106)
    for t in ("<start_of_turn>", "<end_of_turn>", "\n"):
        vocab[t] = len(vocab)
    for token in [f"<0x{b:02X}>" for b in range(256)] + CHARS + [a + b for a, b in merges]:
        vocab.setdefault(token, len(vocab))
    fill_to(256000)
    for t in LOC_TOKENS + SEG_TOKENS + ["<image>"]:
        vocab[t] = len(vocab)
    return vocab


def build(words: list[str] = WORDS, layout: str = "tiny") -> Tokenizer:
    """The tiny tokenizer for a word list; layout "gemma" puts every token at
    the real tokenizer's ids (for full-size random models)."""
    merges = learn_merges(words)
    vocab = _vocab_tiny(merges) if layout == "tiny" else _vocab_gemma(merges)

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    # As in the real tokenizer: specials (never split, skipped when decoding
    # with skip_special_tokens) and the loc/seg tokens as plain added tokens.
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in LOC_TOKENS + SEG_TOKENS])
    return tok


def write(path: Path, words: list[str] = WORDS, layout: str = "tiny") -> Tokenizer:
    tok = build(words, layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path), pretty=False)
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {t: tok.token_to_id(t) for t in SPECIALS + ["\n", "<loc0000>", "<loc1023>", "<seg000>", "<seg127>"]}


if __name__ == "__main__":
    import sys

    t = write(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-tokenizer.json"))
    print("vocab", t.get_vocab_size(), special_ids(t))
    for s in ["<bos>caption en\n", "detect red circle ; blue square\n", "a cat on the mat, 42!\n", "<loc0051><loc0309><loc0708><loc0646> shoe ; zebra"]:
        e = t.encode(s, add_special_tokens=False)
        print(repr(s), e.ids, e.tokens, repr(t.decode(e.ids, skip_special_tokens=False)))
