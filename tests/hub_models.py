"""Tiny keras_hub models built offline from configurations and in-memory vocabularies
(no preset downloads), shared by the in-process tests and the other backends' processes.

Weights are redrawn from one seeded NumPy generator (scaled like Glorot's fan-in rule) so
that the same model is built on every backend and the logits are not the near-constant
ones of keras_hub's 0.02-scale initialisers.
"""

import keras
import keras_hub
import numpy as np

LENGTH = 12
WORDS = ["the", "quick", "brown", "fox", "good", "bad", "movie", "was", "not", "very",
         "a", "plot", "great", "awful", "film"]
TEXTS = ["the movie was very good", "a bad , awful film", "not a great plot"]


def _redraw(model, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 2 else shape[0]
            scale = 1.0 / np.sqrt(max(1, fan_in)) if "embedding" not in variable.path else 1.0
            variable.assign(rng.normal(0.0, scale, shape).astype(variable.dtype))
        elif "gamma" in variable.path or "scale" in variable.path:
            variable.assign(np.ones(shape, variable.dtype))
        else:
            variable.assign(rng.normal(0.0, 0.1, shape).astype(variable.dtype))
    return model


def _bpe(words, specials):
    """A byte-level BPE vocabulary and merges holding ``words`` (with and without the
    leading-space marker "Ġ")."""
    vocabulary = {token: i for i, token in enumerate(specials)}
    merges = []
    # The marked forms' merges first: BPE applies the lowest-ranked merge first.
    for form in ["Ġ" + word for word in words] + list(words):
        pieces = list(form)
        for piece in pieces:
            vocabulary.setdefault(piece, len(vocabulary))
        merged = pieces[0]
        for piece in pieces[1:]:
            merges.append(f"{merged} {piece}")
            merged += piece
            vocabulary.setdefault(merged, len(vocabulary))
    for piece in ("Ġ", ","):
        vocabulary.setdefault(piece, len(vocabulary))
    return vocabulary, list(dict.fromkeys(merges))


def bert(seed=0, classes=3, preprocessor=True):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ","] + WORDS
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=LENGTH, dropout=0.0)
    pre = None
    if preprocessor:
        tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=True)
        pre = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=LENGTH)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=classes,
                                                preprocessor=pre, dropout=0.0)
    return _redraw(model, seed)


def distil_bert(seed=1, classes=3, preprocessor=True):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ","] + WORDS
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.DistilBertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=LENGTH, dropout=0.0)
    pre = None
    if preprocessor:
        tokenizer = keras_hub.tokenizers.DistilBertTokenizer(vocabulary=vocabulary,
                                                             lowercase=True)
        pre = keras_hub.models.DistilBertTextClassifierPreprocessor(
            tokenizer, sequence_length=LENGTH)
    model = keras_hub.models.DistilBertTextClassifier(backbone, num_classes=classes,
                                                      preprocessor=pre, dropout=0.0)
    return _redraw(model, seed)


def roberta(seed=2, classes=3, preprocessor=True):
    vocabulary, merges = _bpe(WORDS, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.RobertaBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=LENGTH, dropout=0.0)
    pre = None
    if preprocessor:
        tokenizer = keras_hub.tokenizers.RobertaTokenizer(vocabulary=vocabulary, merges=merges)
        pre = keras_hub.models.RobertaTextClassifierPreprocessor(tokenizer,
                                                                 sequence_length=LENGTH)
    model = keras_hub.models.RobertaTextClassifier(backbone, num_classes=classes,
                                                   preprocessor=pre, dropout=0.0)
    return _redraw(model, seed)


def gpt2(seed=3, preprocessor=True):
    vocabulary, merges = _bpe(WORDS, ["<|endoftext|>"])
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=LENGTH * 2, dropout=0.0)
    pre = None
    if preprocessor:
        tokenizer = keras_hub.tokenizers.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
        pre = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=LENGTH)
    model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=pre)
    return _redraw(model, seed)


BUILDERS = {"bert": bert, "distil_bert": distil_bert, "roberta": roberta}


def inputs(model, texts=TEXTS):
    """The preprocessor's output for ``texts``, as numpy."""
    x = model.preprocessor(texts)
    x = x[0] if isinstance(x, tuple) else x
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else keras.ops.convert_to_numpy(v))
            for k, v in x.items()}


IMAGE = (32, 32, 3)  # tiny vision transformers: patch 8, a 4×4 grid


def vit(seed=10, classes=3, pooling="token"):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=IMAGE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        mlp_dim=32)
    model = keras_hub.models.ViTImageClassifier(backbone, num_classes=classes,
                                                pooling=pooling)
    return _redraw(model, seed)


def deit(seed=11, classes=3):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.DeiTBackbone(
        image_shape=IMAGE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32)
    return _redraw(keras_hub.models.DeiTImageClassifier(backbone, num_classes=classes), seed)


def dinov2(seed=12, classes=3, registers=2):
    """keras_hub has no DINOv2 classifier: a linear head on the class token."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.DINOV2Backbone(
        patch_size=8, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
        num_register_tokens=registers, image_shape=IMAGE, position_embedding_shape=(32, 32))
    inputs = keras.Input(IMAGE, name="images")
    tokens = backbone({"images": inputs})
    logits = keras.layers.Dense(classes, name="predictions")(tokens[:, 0])
    return _redraw(keras.Model(inputs, logits, name="dinov2_classifier"), seed)


VISION = {"vit": vit, "deit": deit, "dinov2": dinov2}


def images(count=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(count,) + IMAGE).astype("float32")
