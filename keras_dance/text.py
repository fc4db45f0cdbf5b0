"""Raw strings in, per-token scores out: ``Explainer.explain_text`` and ``TextExplanation``.

A keras_hub text Task carries its own preprocessor (tokenizer, special tokens, packing,
padding mask): ``explain_text`` runs it, explains the resulting dict at the token
embedding, and names every position with the tokenizer's own token string
(``id_to_token``), marking padding and special tokens (``[CLS]``, ``[SEP]``, ``<s>``,
BOS) so that displays and metrics can leave them out. Our own vocabulary models (Keras's
``TextVectorization`` convention: id 0 padding, id 1 out-of-vocabulary) are tokenized
the way their exported ``explain_text`` signature does it (``tokenize``).
"""

import dataclasses
import re
import string
from pathlib import Path

import keras
import numpy as np

#: What ``tokenize`` removes: ASCII punctuation, as the exported graph's regex.
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclasses.dataclass
class TextExplanation:
    """Per-token scores of a batch of texts.

    Attributes:
        texts: the input strings.
        tokens: per text, the token string at every position (``len == L``; padding
            positions hold the tokenizer's padding token, or "" for our vocabularies).
        ids: int32 ``(B, L)`` token ids.
        scores: float32 ``(B, L)`` (or ``(B, L, E)`` with ``token_reduction=None``);
            exactly 0 at the padding positions the explainer knows (a ``padding_mask``
            input, ``pad_id``).
        mask: bool ``(B, L)``: True at real (non-padding) tokens.
        special: bool ``(B, L)``: True at the tokenizer's special tokens (``[CLS]``,
            ``[SEP]``, BOS …), which carry scores but are usually not displayed.
        targets: int32 ``(B,)``: the class (or the continuation's first token) explained.
        details: the ``explain`` details (decoy statistics, for causal LMs the matrix of
            each continuation token's log-probability attributed to each earlier token).
    """

    texts: list
    tokens: list
    ids: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    special: np.ndarray
    targets: np.ndarray
    details: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.texts)

    def words(self, index, special=False):
        """``[(token, score)]`` of text ``index``: real tokens (padding left out), the
        special tokens too with ``special=True``."""
        keep = self.mask[index] & (special | ~self.special[index])
        scores = self.scores[index]
        if scores.ndim > 1:
            scores = scores.sum(axis=-1)
        return [(self.tokens[index][j], float(scores[j])) for j in np.flatnonzero(keep)]

    def visualize(self, index, special=False):
        """``kd.viz.text`` of text ``index`` (a ``TextMap``: ``.html``, ``.save(path)``;
        displays in notebooks)."""
        from keras_dance import viz

        pairs = self.words(index, special)
        return viz.text([t for t, _ in pairs], np.array([s for _, s in pairs], np.float64))

    def _repr_html_(self):
        return "".join(self.visualize(i).html for i in range(len(self)))


def check_texts(texts, name="texts"):
    """A string or a non-empty list of strings → a list of strings."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, np.ndarray) and texts.dtype.kind in "US":
        texts = texts.tolist()
    if (not isinstance(texts, (list, tuple)) or not texts
            or not all(isinstance(t, str) for t in texts)):
        raise TypeError(
            f"Expected `{name}` to be a string or a non-empty list of strings. Received: "
            f"{name}={texts!r:.80}")
    return list(texts)


def tokenize(texts, vocabulary, length):
    """Sentences → ``(words (N, length) str, ids (N, length) int32)`` as the exported
    ``explain_text`` signature does in the graph: ASCII lower case, ASCII punctuation
    removed, split on whitespace, truncated or padded ("" → id 0); unknown words → id 1."""
    index = {word: i for i, word in enumerate(vocabulary) if i >= 2}
    words = np.full((len(texts), length), "", dtype=object)
    ids = np.zeros((len(texts), length), np.int32)
    for row, text in enumerate(texts):
        for column, word in enumerate(
                _PUNCTUATION.sub("", text.translate(_ASCII_LOWER)).split()[:length]):
            words[row, column] = word
            ids[row, column] = index.get(word, 1)
    return words.astype(str), ids


def read_vocabulary(vocabulary):
    """A list of tokens or a file of one per line → the list (checked: id 0 padding, id 1
    out-of-vocabulary, then unique words)."""
    if isinstance(vocabulary, (str, Path)):
        try:
            vocabulary = Path(vocabulary).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(
                f"Expected `vocabulary` to be a readable file of one token per line. "
                f"Received: vocabulary={str(vocabulary)!r} ({error.strerror})") from error
    if not isinstance(vocabulary, (list, tuple)) or len(vocabulary) < 3 or not all(
            isinstance(t, str) for t in vocabulary):
        raise ValueError(
            "Expected `vocabulary` to be a list of at least 3 strings (id 0 padding, id 1 "
            f"out-of-vocabulary, then words) or a file of them. Received: {vocabulary!r:.80}")
    words = list(vocabulary[2:])
    if len(set(words)) != len(words) or "" in words:
        raise ValueError("Expected unique, non-empty words in `vocabulary` after ids 0 and 1. "
                         "Received: duplicates or an empty line")
    return list(vocabulary)


def preprocessor_of(model):
    """A keras_hub Task's preprocessor (with a tokenizer), or None."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        return None
    return preprocessor


def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy")
                      else keras.ops.convert_to_numpy(value))


def _token_strings(tokenizer, ids):
    """Per text, the tokenizer's string at every position (``id_to_token``, once per
    distinct id), and where its special tokens are."""
    names = {int(i): str(tokenizer.id_to_token(int(i))) for i in np.unique(ids)}
    special_ids = [int(i) for i in getattr(tokenizer, "special_token_ids", []) or []]
    return [[names[int(i)] for i in row] for row in ids], np.isin(ids, special_ids)


def encode(explainer, texts, vocabulary=None):
    """``(inputs for explain, ids (B, L), tokens, special (B, L))`` for raw strings."""
    view = explainer.model_view
    preprocessor = preprocessor_of(explainer.model)
    if preprocessor is not None and vocabulary is None:
        length = getattr(preprocessor, "sequence_length", None)
        if length is not None and length != view.token_shape[0]:
            raise ValueError(
                f"Expected the preprocessor's sequence_length to equal the explained "
                f"length {view.token_shape[0]}. Received: sequence_length={length}")
        outputs = preprocessor(texts)
        if isinstance(outputs, tuple):
            outputs = outputs[0]
        if view.structure is not None:
            x = {k: _numpy(outputs[k]) for k in view.structure.keys}
            if view.structure.kind == "list":
                x = [x[k] for k in view.structure.keys]
            ids = _numpy(outputs[view.token_key])
        else:
            ids = _numpy(outputs["token_ids"] if isinstance(outputs, dict) else outputs)
            x = ids
        tokens, special = _token_strings(preprocessor.tokenizer, ids)
        return x, ids.astype(np.int32), tokens, special
    if vocabulary is None:
        raise ValueError(
            "Expected `vocabulary` (a list of tokens or a file: id 0 padding, id 1 "
            "out-of-vocabulary) for a model without a keras_hub preprocessor. Received: "
            "vocabulary=None")
    if view.structure is not None and view.structure.kind != "single":
        raise ValueError(
            "Expected a model with one input (token ids) for `vocabulary`: a model with "
            "several inputs is explained from text through its keras_hub preprocessor. "
            f"Received: inputs {view.structure.keys}")
    vocabulary = read_vocabulary(vocabulary)
    words, ids = tokenize(texts, vocabulary, view.token_shape[0])
    if view.vocabulary_size is not None and len(vocabulary) > view.vocabulary_size:
        raise ValueError(
            f"Expected at most {view.vocabulary_size} tokens in `vocabulary` (the "
            f"embedding's input_dim). Received: {len(vocabulary)} tokens")
    return ids, ids, [[str(w) for w in row] for row in words], np.zeros(ids.shape, bool)


def _as_lists(ids):
    """A tokenizer's output (ragged or dense, any backend) → Python lists of ints."""
    if hasattr(ids, "to_list"):
        return [[int(i) for i in row] for row in ids.to_list()]
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return [[int(i) for i in np.asarray(row).ravel()] for row in ids]


def encode_causal(explainer, prompts, continuations):
    """A causal LM's inputs for ``prompt + continuation``: ``(x, ids, tokens, special,
    continuation (B, L) bool)``; the start token when the preprocessor adds one."""
    view = explainer.model_view
    preprocessor = preprocessor_of(explainer.model)
    if preprocessor is None:
        raise ValueError(
            "Expected a keras_hub CausalLM with a preprocessor (its tokenizer) for "
            "`explain_text`. Received: a causal LM without one")
    if continuations is None or callable(continuations):
        raise ValueError(
            "Expected `targets` to be the continuation(s) whose log-probability given each "
            "prompt is explained (a string or one per prompt) for a causal LM. Received: "
            f"targets={continuations!r}")
    continuations = check_texts(continuations, "targets")
    if len(continuations) == 1:
        continuations = continuations * len(prompts)
    if len(continuations) != len(prompts):
        raise ValueError(
            f"Expected one continuation per prompt ({len(prompts)}) or one for all. "
            f"Received: {len(continuations)} continuations")
    tokenizer = preprocessor.tokenizer
    start = ([tokenizer.start_token_id] if getattr(preprocessor, "add_start_token", False)
             and getattr(tokenizer, "start_token_id", None) is not None else [])
    length = view.token_shape[0]
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    shape = (len(prompts), length)
    x = {"token_ids": np.full(shape, pad, np.int32)}
    for key in ("padding_mask",) + tuple(k for k in ("prompt_mask", "score_weights")):
        x[key] = np.zeros(shape, np.int32)
    for row, (prompt, tail) in enumerate(zip(_as_lists(tokenizer(prompts)),
                                            _as_lists(tokenizer(continuations)))):
        head = start + prompt
        if not tail:
            raise ValueError(f"Expected a non-empty continuation. Received: targets[{row}]="
                             f"{continuations[row]!r} (no tokens)")
        if len(head) + len(tail) > length:
            raise ValueError(
                f"Expected prompt and continuation within the model's {length} tokens. "
                f"Received: {len(head) + len(tail)} tokens for text {row}")
        x["token_ids"][row, :len(head) + len(tail)] = head + tail
        x["padding_mask"][row, :len(head) + len(tail)] = 1
        x["prompt_mask"][row, :len(head)] = 1
        x["score_weights"][row, len(head):len(head) + len(tail)] = 1
    x = {k: x[k] for k in view.structure.keys}
    ids = x["token_ids"]
    tokens, special = _token_strings(tokenizer, ids)
    return x, ids, tokens, special & (x["padding_mask"] > 0)


def _explain_causal(explainer, prompts, continuations, return_details, **kwargs):
    x, ids, tokens, special = encode_causal(explainer, prompts, continuations)
    maps, details = explainer.explain(x, 0, return_details=True, **kwargs)
    view = explainer.model_view
    view.space(keras.ops.convert_to_tensor(explainer.validate(x, in_range=False)))
    score = explainer.forward(view._embedded)
    view._context = None
    details["log_probability"] = keras.ops.convert_to_numpy(score)[:, 0]
    details["continuation"] = x["score_weights"] > 0
    if return_details:
        # One explanation per continuation token t: log p(token t | everything before).
        count = int(x["score_weights"].sum(axis=1).max())
        matrix = np.zeros((len(ids), count) + maps.shape[1:], np.float32)
        for t in range(count):
            weights = np.zeros_like(x["score_weights"])
            for row in range(len(ids)):
                positions = np.flatnonzero(x["score_weights"][row])
                if t < len(positions):
                    weights[row, positions[t]] = 1
            part = explainer.explain(dict(x, score_weights=weights), 0, **kwargs)
            matrix[:, t] = part * (weights.sum(axis=1) > 0).reshape(
                (-1,) + (1,) * (part.ndim - 1))
        details["matrix"] = matrix
    details.pop("targets")
    return TextExplanation(
        texts=list(prompts), tokens=tokens, ids=ids, scores=maps,
        mask=x["prompt_mask"] > 0, special=special & (x["prompt_mask"] > 0),
        targets=np.zeros(len(ids), np.int32), details=details)


def explain_text(explainer, texts, targets=None, vocabulary=None, return_details=False,
                 **kwargs):
    """See ``Explainer.explain_text``."""
    if not explainer.tokens:
        raise ValueError(
            "Expected a token model (integer ids through an Embedding) for `explain_text`. "
            f"Received: a model with inputs of shape {explainer.input_shape}")
    texts = check_texts(texts)
    if explainer.model_view.causal:
        return _explain_causal(explainer, texts, targets, return_details, **kwargs)
    x, ids, tokens, special = encode(explainer, texts, vocabulary)
    maps, details = explainer.explain(x, targets, return_details=True, **kwargs)
    mask = keras.ops.convert_to_numpy(
        explainer.model_view.pad_mask(explainer.validate(x, in_range=False))) > 0
    if vocabulary is not None:
        mask &= ids != 0  # Keras's vocabulary convention: id 0 pads
    return TextExplanation(texts=texts, tokens=tokens, ids=ids, scores=maps, mask=mask,
                           special=special & mask, targets=details.pop("targets"),
                           details=details)
