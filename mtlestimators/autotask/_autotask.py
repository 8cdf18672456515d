"""AutoTask: task-aware multi-faceted single model for multi-scenario
classification (the "Multi-Faceted Single Model" of the AutoTask paper,
section 3).

Facet 1 treats the d features of a row as a sequence of tokens
``[x_j, one_hot(task)]`` and runs a causal GPT block over them; facet 2 treats
a block of t rows of mixed tasks as a sequence and runs a second causal GPT
block across the rows. The two representations are concatenated and a linear
layer gives the logit.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import _num_samples
from torch import nn
from torch.nn.attention.bias import causal_lower_right

from .._core.params import InstanceOf, Integer, Options, Real
from . import _text
from ._scenario import UNSEEN_TASK, ScenarioClassifierBase, task_column_index

TASK_ENCODINGS = ("onehot", "number", "none")
# block_embed_dim="auto": e2 = d * e1 (the paper) up to this width. Facet 2's
# MLP has about 12 * e2**2 weights, so the paper's e2 = d * e1 grows as d**2.
AUTO_BLOCK_EMBED_DIM = 64
# attention_window's default: facet 1 is the paper's full causal attention up
# to twice this many tokens, and chunked causal attention beyond.
DEFAULT_ATTENTION_WINDOW = 128


ATTENTIONS = ("causal", "full")
FUSIONS = ("concat", "sum")


def _lower_right_causal(n_queries: int, n_keys: int, device):
    """The causal mask of ``n_queries`` queries that are the last of
    ``n_keys`` keys: query i sees keys j <= i + n_keys - n_queries.

    torch's ``causal_lower_right`` bias runs on the fused kernels (on CUDA
    without a mask in memory; on CPU as one (n_queries, n_keys) boolean
    mask); the exporters and torch.compile get that mask as booleans."""
    if (
        torch.compiler.is_exporting()
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
    ):
        query = torch.arange(n_queries, device=device).view(-1, 1)
        key = torch.arange(n_keys, device=device).view(1, -1)
        return key <= query + (n_keys - n_queries)
    return causal_lower_right(n_queries, n_keys)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position i attends to positions <= i
    (``causal=True``; all positions otherwise).

    With ``window`` = c and a causal sequence longer than 2c positions, the
    sequence is cut into chunks of c positions, and a position attends to
    the positions before it in its chunk and to the whole previous chunk
    (c + 1 to 2c positions, itself included), so time and memory grow
    linearly with the sequence length. ``window=None``, a sequence of up to
    2c positions (where that is every earlier position) and attention
    without a mask (``causal=False``) attend over the whole sequence.

    Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`
    (a fused kernel where the device has one). There is no dropout on the
    attention probabilities: it would force the unfused kernel, whose memory
    grows with the square of the sequence length; the block's residual
    dropout regularizes instead.
    """

    # A module pickled before these settings existed: plain causal attention.
    causal = True
    window = None

    def __init__(self, dim: int, n_heads: int, causal: bool = True, window=None):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.n_heads = n_heads
        self.causal = causal
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        if T == 1:  # one position attends only to itself: the output is v
            v = F.linear(x, self.qkv.weight[2 * D :], self.qkv.bias[2 * D :])
            return self.proj(v)
        q, k, v = self.qkv(x).split(D, dim=2)
        shape = (B, T, self.n_heads, D // self.n_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        if not self.causal or self.window is None or T <= 2 * self.window:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            y = self._chunked(q, k, v, T)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))

    def _chunked(self, q, k, v, T):
        """Causal attention chunk by chunk (see the class): (B, H, T, hd)."""
        c = self.window
        n = -(-T // c)
        B, H, _, hd = q.shape

        def chunks(t):  # (B, H, T, hd) -> (B, H, n, c, hd); padding at the
            # end, which no real position attends to (they are all later)
            return F.pad(t, (0, 0, 0, n * c - T)).reshape(B, H, n, c, hd)

        qc, kc, vc = chunks(q), chunks(k), chunks(v)
        first = F.scaled_dot_product_attention(
            qc[:, :, 0], kc[:, :, 0], vc[:, :, 0], is_causal=True
        )

        def context(t):  # the keys of chunks 1..n-1: previous chunk, own chunk
            return torch.cat([t[:, :, :-1], t[:, :, 1:]], dim=3).reshape(
                B, H * (n - 1), 2 * c, hd
            )

        rest = F.scaled_dot_product_attention(
            qc[:, :, 1:].reshape(B, H * (n - 1), c, hd),
            context(kc),
            context(vc),
            attn_mask=_lower_right_causal(c, 2 * c, q.device),
        )
        y = torch.cat([first, rest.reshape(B, H, (n - 1) * c, hd)], dim=2)
        return y[:, :, :T]


class GPTBlock(nn.Module):
    """Pre-norm transformer block (GPT-2): causal attention, then a 4x MLP."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        dropout: float = 0.0,
        causal: bool = True,
        window=None,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, causal, window)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.drop(self.mlp(self.ln_2(x)))


class GPT(nn.Module):
    """``n_layers`` GPT blocks and a final layer norm over (B, T, dim)."""

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        causal: bool = True,
        window=None,
    ):
        super().__init__()
        self.blocks = nn.Sequential(
            *(GPTBlock(dim, n_heads, dropout, causal, window) for _ in range(n_layers))
        )
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln_f(self.blocks(x))


class AutoTaskModule(nn.Module):
    """The multi-faceted model of the AutoTask paper (section 3).

    Parameters
    ----------
    n_features : int
        Feature columns besides the task column.
    n_tasks : int
        N, the tasks seen in training (codes 1..N; code 0 is the unseen task).
    output_dim : int
        1 (binary logit) or the number of classes.
    task_encoding : {"onehot", "number", "none"}
        "onehot": the task code is the last feature and its one-hot encoding
        (N wide; all zeros for the unseen task) joins every token of both
        facets. "number": the task code is the last feature only. "none": no
        task information.
    feature_embed_dim : int
        e1, the token embedding size of facet 1; T1 has d * e1 values.
    block_embed_dim : int
        e2, the embedding size of facet 2 (T2).
    block_size : int
        t, rows per block in facet 2 during training.
    task_dropout : float
        Training rows whose task is replaced by the unseen task (code 0), so
        the unseen-task path is trained on every task's rows.
    attention : {"causal", "full"}
        Causal (auto-regressive) attention in both facets, as in the paper,
        or attention without a mask (the paper's discussion ablation).
    attention_window : int or None
        Facet 1 with causal attention and more than 2 * ``attention_window``
        tokens: chunks of ``attention_window`` tokens, each token attending to
        the earlier tokens of its chunk and to the previous chunk (linear cost
        in d); None: to every earlier token.
    fusion : {"concat", "sum"}
        T1 and T2 concatenated before the head (the paper), or summed (the
        paper's ablation; needs e2 = d * e1).
    text_vocab_size : int
        Ids of the text tokenizer (id 0 is the padding); 0: no text.
    n_text_tokens : int
        L, text token ids per row (all text columns); they join facet 1's
        sequence after the d feature tokens, so T1 has (d + L) * e1 values.
    """

    def __init__(
        self,
        n_features: int,
        n_tasks: int,
        output_dim: int = 1,
        task_encoding: str = "onehot",
        feature_embed_dim: int = 8,
        block_embed_dim: int = 128,
        block_size: int = 8,
        n_layers: int = 1,
        n_heads: int = 1,
        dropout: float = 0.1,
        task_dropout: float = 0.0,
        attention: str = "causal",
        attention_window=None,
        fusion: str = "concat",
        text_vocab_size: int = 0,
        n_text_tokens: int = 0,
    ):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {ATTENTIONS}, got {attention!r}."
            )
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}.")
        self.task_encoding = task_encoding
        self.uses_task_number = task_encoding in ("onehot", "number")
        self.uses_onehot = task_encoding == "onehot"
        self.block_size = block_size
        self.task_dropout = task_dropout
        d = n_features + int(self.uses_task_number)
        self.n_tokens = d
        # The task number joins the features scaled to [0, 1] (code / N), so
        # that it stays on the z-scored features' scale for any N.
        self.n_tasks = n_tasks
        self.fusion = fusion
        e1, e2 = feature_embed_dim, block_embed_dim
        self.n_text_tokens = n_text_tokens
        n1 = d + n_text_tokens  # facet 1's tokens: features, then text
        if fusion == "sum" and e2 != n1 * e1:
            width = "(d + L) * e1" if n_text_tokens else "d * e1"
            raise ValueError(
                f"fusion='sum' adds T1 ({width} = {n1 * e1} values) and T2 (e2 = "
                f"{e2}), so e2 must equal {width}; set block_embed_dim='paper'."
            )
        causal = attention == "causal"
        # Facet 1: token [x_j, one_hot(task)] (N + 1 values) -> e1. A linear
        # map of that concatenation is x_j * w + b + (row of W for the task);
        # the task part is an embedding lookup whose row 0 (unseen) is zero.
        self.value_embed_1 = nn.Linear(1, e1)
        self.task_embed_1 = (
            nn.Embedding(n_tasks + 1, e1, padding_idx=UNSEEN_TASK)
            if self.uses_onehot
            else None
        )
        self.position_embed_1 = nn.Parameter(torch.zeros(d, e1))
        self.facet_1 = GPT(e1, n_layers, n_heads, dropout, causal, attention_window)
        # Text tokens (text_columns): an id embedding whose padding row stays
        # zero, positions of their own, and the task's embedding as the
        # feature tokens have it.
        self.text_embed_1 = self.text_position_embed_1 = None
        if n_text_tokens:
            self.text_embed_1 = nn.Embedding(
                text_vocab_size, e1, padding_idx=_text.PAD_ID
            )
            self.text_position_embed_1 = nn.Parameter(torch.zeros(n_text_tokens, e1))
        # Facet 2: token [x (d values), one_hot(task)] of each row -> e2.
        self.row_embed_2 = nn.Linear(d, e2)
        self.task_embed_2 = (
            nn.Embedding(n_tasks + 1, e2, padding_idx=UNSEEN_TASK)
            if self.uses_onehot
            else None
        )
        self.position_embed_2 = nn.Parameter(torch.zeros(block_size, e2))
        self.facet_2 = GPT(e2, n_layers, n_heads, dropout, causal)
        self.drop = nn.Dropout(dropout)
        fused = e2 if fusion == "sum" else n1 * e1 + e2
        self.head = nn.Linear(fused, output_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
                if isinstance(module, nn.Embedding):
                    with torch.no_grad():
                        module.weight[UNSEEN_TASK].zero_()
        nn.init.normal_(self.position_embed_1, std=0.02)
        nn.init.normal_(self.position_embed_2, std=0.02)
        if self.text_position_embed_1 is not None:
            nn.init.normal_(self.text_position_embed_1, std=0.02)

    # ------------------------------------------------------------------ parts
    def tokens(self, features: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """The d feature values of each row, (B, d): the features, then the
        task code as a number (code / N, in [0, 1]) unless
        ``task_encoding="none"``."""
        if not self.uses_task_number:
            return features
        # a module pickled before the scaling existed has no n_tasks: raw codes
        n_tasks = getattr(self, "n_tasks", 1)
        number = task.to(features.dtype) / max(n_tasks, 1)
        return torch.cat([features, number.unsqueeze(1)], dim=1)

    def feature_tokens(
        self, x: torch.Tensor, task: torch.Tensor, text=None
    ) -> torch.Tensor:
        """Facet 1 before flattening: (B, d, e1), or (B, d + L, e1) with the
        text token ids ``text`` (B, L)."""
        # x_j * w + b, the Linear(1, e1) map without a matmul per token
        embed = self.value_embed_1
        h = x.unsqueeze(-1) * embed.weight[:, 0] + (embed.bias + self.position_embed_1)
        if self.task_embed_1 is not None:
            h = h + self.task_embed_1(task).unsqueeze(1)
        if text is None:
            return self.facet_1(h)
        return self._with_text_tokens(h, task, text)

    def _with_text_tokens(self, h, task, text) -> torch.Tensor:
        """Facet 1 over the feature tokens ``h`` (B, d, e1) followed by the
        text tokens: (B, d + L, e1), zero at the padding positions.

        Inside facet 1 the padding of every row is moved behind its words
        (the words keep their order, their columns and their own position
        embeddings), so with causal attention no word or feature token
        attends to padding: padding is inert, whatever the number of text
        columns. The outputs are put back in the (column, position) slots
        for the head."""
        valid = text != _text.PAD_ID  # (B, L)
        t = self.text_embed_1(text) + self.text_position_embed_1  # (B, L, e1)
        if self.task_embed_1 is not None:
            t = t + self.task_embed_1(task).unsqueeze(1)
        # slot -> place in the packed sequence: words first, then padding
        words = valid.long()
        place = torch.where(
            valid,
            words.cumsum(1) - 1,
            words.sum(1, keepdim=True) + (1 - words).cumsum(1) - 1,
        )
        index = place.unsqueeze(-1).expand_as(t)  # (B, L, e1)
        packed = torch.zeros_like(t).scatter(1, index, t)
        d = h.shape[1]
        out = self.facet_1(torch.cat([h, packed], dim=1))  # (B, d + L, e1)
        words_out = out[:, d:].gather(1, index) * valid.unsqueeze(-1).to(out.dtype)
        return torch.cat([out[:, :d], words_out], dim=1)

    def block_representation(
        self, x: torch.Tensor, task: torch.Tensor, block_size: int
    ) -> torch.Tensor:
        """Facet 2, T2 (B, e2): consecutive rows form blocks of ``block_size``
        (the last one may be shorter); attention is causal within a block."""
        h = self.row_embed_2(x)
        if self.task_embed_2 is not None:
            h = h + self.task_embed_2(task)
        B, e2 = h.shape
        t = max(1, min(block_size, B))
        full = B - B % t
        parts = []
        if full:
            parts.append(
                self.facet_2(h[:full].view(-1, t, e2) + self.position_embed_2[:t])
            )
        if full < B:
            rest = B - full
            parts.append(
                self.facet_2(h[full:].view(1, rest, e2) + self.position_embed_2[:rest])
            )
        return torch.cat([p.reshape(-1, e2) for p in parts], dim=0)

    def facets(self, features, task, block_size=None, text=None):
        """(T1 (B, d * e1), T2 (B, e2)). ``block_size`` defaults to the
        training block size in training mode and to 1 (each row alone) in
        evaluation mode. With text token ids ``text`` (B, L), T1 has
        (d + L) * e1 values; facet 2 sees the features only."""
        if block_size is None:
            block_size = self.block_size if self.training else 1
        x = self.tokens(features, task)
        t1 = self.feature_tokens(x, task, text).flatten(1)
        t2 = self.block_representation(x, task, block_size)
        return t1, t2

    def forward(self, features: torch.Tensor, task: torch.Tensor, text=None):
        if self.training and self.task_dropout > 0 and self.uses_task_number:
            dropped = torch.rand(task.shape, device=task.device) < self.task_dropout
            task = task.masked_fill(dropped, UNSEEN_TASK)
        t1, t2 = self.facets(features, task, text=text)
        sum_fusion = getattr(self, "fusion", "concat") == "sum"  # older pickles
        fused = t1 + t2 if sum_fusion else torch.cat([t1, t2], dim=1)
        out = self.head(self.drop(fused))
        return (out.squeeze(-1) if out.shape[-1] == 1 else out,)


class AutoTaskClassifier(ScenarioClassifierBase):
    """AutoTask: one model for many scenarios (tasks) that predicts one task
    at a time and generalizes to tasks not seen in training.

    X holds numeric features plus a column of task ids (``task_column``),
    and optionally columns of text (``text_columns``); y holds one label per
    row (binary as in the paper; multiclass works too).
    Each row is scored alone at prediction time, so ``predict_proba`` of a
    row does not depend on the other rows, the batch size or their order.

    Unseen tasks: a task id not seen in ``fit`` gets the unseen-task code 0
    (the paper's choice): task number 0 and an all-zero one-hot, i.e. no
    task information. With ``task_dropout > 0`` a fraction of the training
    rows of every task is shown with code 0 as well, which trains that path
    as a general model of all tasks.

    Parameters
    ----------
    task_column : int or str, default=-1
        Column of X with the task ids (index, or name for a DataFrame).
    text_columns : list of int or str, default=None
        Columns of X that hold text (str; None or NaN for a missing text),
        by index or DataFrame name; they are not numeric features. A
        word-level tokenizer is fitted on their training text (lower case,
        words and punctuation as tokens, no download; needs
        ``pip install "mtlestimators[text]"``); a word it did not keep is the
        unknown token. Each column's first ``max_text_tokens`` tokens join
        facet 1's sequence after the feature tokens, each token embedded
        with a position embedding of its own plus the task's facet-1
        embedding, as the features are; padding is zero in T1 and, with
        causal attention, attended by no token. Facet 2 sees the numeric
        features only. None: no text.
    max_text_tokens : int, default=32
        L per text column: longer texts are cut, shorter ones padded.
    text_vocab_size : int, default=20000
        Most ids of the tokenizer, the padding and unknown tokens included;
        the most frequent training words are kept (ties alphabetically).
    text_min_frequency : int, default=2
        Words seen fewer times in the training text are unknown tokens.
    task_encoding : {"onehot", "number", "none"}, default="onehot"
        How the task enters the model (the paper's Table 3 ablation):
        "onehot" = task number as the last feature plus its one-hot encoding
        in every token of both facets; "number" = task number only;
        "none" = the task column is dropped. The task number enters scaled
        to code / N (in [0, 1]; the paper gives the raw id), so that it stays
        on the z-scored features' scale whatever the number of tasks.
    feature_embed_dim : int, default=8
        e1, the token embedding size of facet 1 (T1 has d * e1 values). With
        L text tokens T1 has (d + L) * e1 values, and "d * e1" below
        (``block_embed_dim``, ``fusion``) means (d + L) * e1.
    block_embed_dim : int, "auto" or "paper", default="auto"
        e2, the embedding size of facet 2. "paper": d * e1, as in the paper
        (facet 2's weights then grow as d**2). "auto": d * e1 up to 64, and
        64 for wider data, so that cost and memory grow linearly in d; with
        ``fusion="sum"``, "auto" is "paper".
        None is the old spelling of "paper" (a FutureWarning).
    block_size : int, default=8
        t, rows per block of mixed tasks in facet 2 during training.
    n_layers : int, default=1
        Transformer layers per facet (the paper uses one).
    n_heads : int, default=1
        Attention heads; must divide e1 and e2. The paper does not give the
        number; one head of e1 = 8 values gave the same AUC as two heads of
        4 on Adult (3 seeds) and trains about 15% faster.
    dropout : float, default=0.1
        Dropout on the residual branches, the attention output and the fused
        representation (not on attention probabilities).
    task_dropout : float, default=0.0
        Fraction of training rows shown as the unseen task (see above). 0 is
        the paper's training; on Adult (5 seeds) 0.1 scored the held-out
        occupations no better (ROC AUC 85.41 against 85.67 at 0;
        docs/results/autotask.md, Table 5). Try 0.1 when unseen tasks
        are scored poorly.
    attention : {"causal", "full"}, default="causal"
        Causal (auto-regressive) attention in both facets, as in the paper;
        "full" is attention without a mask (the paper's ablation: facet 2
        then lets a training row see later rows of its block).
    attention_window : int or None, default=128
        Data with up to 2 * ``attention_window`` tokens in facet 1 (the
        features, the task number and any text tokens) get the paper's
        attention over all earlier tokens. Wider data are cut into chunks of
        ``attention_window`` tokens, and a token attends to the earlier tokens
        of its chunk and to the whole previous chunk (129 to 256 tokens at
        the default), so the cost grows linearly in d. None gives the paper's
        attention at every width (time quadratic in d). Attention without a
        mask (``attention="full"``) is never chunked.
    fusion : {"concat", "sum"}, default="concat"
        How T1 and T2 are fused before the linear head: concatenated (the
        paper) or summed (the paper's ablation; needs e2 = d * e1).
    standardize : bool, default=True
        z-score the features (not the task column) with training statistics.
    lr : float, default=6e-4
    max_epochs : int, default=100
    batch_size : int, default=256
    optimizer, callbacks, warm_start, verbose, device, random_state, train_split,
    checkpoint_dir, autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, class_weight
        As for every estimator of the library (see
        :class:`~mtlestimators.SharedBottomClassifier`). With
        ``warm_start=True`` a second ``fit`` continues training (the paper's
        distillation schedule: teacher labels first, then human labels).
    **kwargs
        Routed parameters: ``optimizer__*``, ``callbacks__*``, ...

    Attributes
    ----------
    tasks_ : ndarray of object
        Task ids seen in fit (codes 1..N in that order).
    n_tasks_ : int
    classes_ : ndarray
    class_weight_ : list of one dict
        The weight of each class label, ``{label: weight}``, resolved from
        ``class_weight`` at fit (all 1.0 when it is None).
    feature_mean_, feature_scale_ : ndarray
        Standardization of the feature columns (zeros/ones when off; with
        ``sample_weight``, weighted, leaving out rows of weight 0).
    text_tokenizer_ : str
        With ``text_columns``: the fitted tokenizer as the JSON text of a
        Hugging Face ``tokenizers.Tokenizer`` (``Tokenizer.from_str`` loads
        it); id 0 is the padding, id 1 the unknown token.
    net_, history_, n_features_in_, feature_names_in_
        As for every estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import AutoTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = np.column_stack([rng.normal(size=(300, 3)), rng.randint(3, size=300)])
    >>> y = (X[:, 0] + 0.5 * X[:, 3] > 0.5).astype(int)
    >>> clf = AutoTaskClassifier(max_epochs=3, verbose=0, random_state=0).fit(X, y)
    >>> clf.tasks_.tolist()
    [0.0, 1.0, 2.0]
    >>> clf.predict_proba([[0.1, 0.2, 0.3, 7.0]]).shape  # task 7 is unseen
    (1, 2)
    """

    # What an estimator pickled before these parameters existed was fitted
    # with (its module has no text input, no window, concatenation).
    text_columns = None
    max_text_tokens = 32
    text_vocab_size = 20000
    text_min_frequency = 2
    attention = "causal"
    attention_window = None
    fusion = "concat"

    _parameter_constraints = {
        "text_columns": [
            None,
            InstanceOf((list, tuple), description="a list of column names or indices"),
        ],
        "max_text_tokens": [Integer(1)],
        "text_vocab_size": [Integer(len(_text.SPECIAL_TOKENS) + 1)],
        "text_min_frequency": [Integer(1)],
        "task_encoding": [Options(TASK_ENCODINGS)],
        "feature_embed_dim": [Integer(1)],
        "block_embed_dim": [Integer(1), Options(("auto", "paper")), None],
        "block_size": [Integer(1)],
        "n_layers": [Integer(1)],
        "n_heads": [Integer(1)],
        "dropout": [Real(0, 1, closed="left")],
        "task_dropout": [Real(0, 1, closed="left")],
        "attention": [Options(ATTENTIONS)],
        "attention_window": [None, Integer(1)],
        "fusion": [Options(FUSIONS)],
    }

    def __init__(
        self,
        task_column=-1,
        text_columns=None,
        max_text_tokens: int = 32,
        text_vocab_size: int = 20000,
        text_min_frequency: int = 2,
        task_encoding: str = "onehot",
        feature_embed_dim: int = 8,
        block_embed_dim="auto",
        block_size: int = 8,
        n_layers: int = 1,
        n_heads: int = 1,
        dropout: float = 0.1,
        task_dropout: float = 0.0,
        attention: str = "causal",
        attention_window=DEFAULT_ATTENTION_WINDOW,
        fusion: str = "concat",
        standardize: bool = True,
        lr: float = 6e-4,
        max_epochs: int = 100,
        batch_size: int = 256,
        optimizer="adam",
        callbacks=None,
        warm_start: bool = False,
        verbose: int = 1,
        device: str = "cpu",
        random_state=None,
        train_split=None,
        checkpoint_dir=None,
        autocast=False,
        accelerator=None,
        early_stopping="auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        class_weight=None,
        **kwargs,
    ):
        self.task_column = task_column
        self.text_columns = text_columns
        self.max_text_tokens = max_text_tokens
        self.text_vocab_size = text_vocab_size
        self.text_min_frequency = text_min_frequency
        self.task_encoding = task_encoding
        self.feature_embed_dim = feature_embed_dim
        self.block_embed_dim = block_embed_dim
        self.block_size = block_size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.task_dropout = task_dropout
        self.attention = attention
        self.attention_window = attention_window
        self.fusion = fusion
        self.standardize = standardize
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.verbose = verbose
        self.device = device
        self.random_state = random_state
        self.train_split = train_split
        self.checkpoint_dir = checkpoint_dir
        self.autocast = autocast
        self.accelerator = accelerator
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        vars(self).update(kwargs)

    def _build_module(
        self, specs, n_features, n_tasks, text_vocab_size=0, n_text_tokens=0
    ):
        d = n_features + int(self.task_encoding != "none")
        if d == 0 and not n_text_tokens:
            raise ValueError(
                "X has only the task column, and task_encoding='none' drops it; "
                "AutoTaskClassifier needs at least 1 feature(s) besides the "
                "task column."
            )
        if n_text_tokens and self.attention == "full":
            raise ValueError(
                "attention='full' lets every token attend to the text columns' "
                "padding, so a row's score would depend on how short its texts "
                "are; text_columns needs attention='causal' (the default), "
                "under which padding is attended by no token."
            )
        n1 = d + n_text_tokens  # facet 1's tokens
        e1 = int(self.feature_embed_dim)
        e2 = self.block_embed_dim
        if e2 is None:
            warnings.warn(
                "block_embed_dim=None (e2 = d * e1) is now spelled "
                "block_embed_dim='paper'; None will be refused in a future "
                "version. The default is 'auto' (d * e1 up to 64).",
                FutureWarning,
                stacklevel=4,
            )
            e2 = "paper"
        if e2 == "paper" or (e2 == "auto" and self.fusion == "sum"):
            e2 = n1 * e1
        elif e2 == "auto":
            cap = AUTO_BLOCK_EMBED_DIM - AUTO_BLOCK_EMBED_DIM % self.n_heads
            e2 = min(n1 * e1, max(cap, self.n_heads))
        for name, dim in (("feature_embed_dim", e1), ("block_embed_dim", e2)):
            if dim % self.n_heads:
                raise ValueError(
                    f"n_heads={self.n_heads} must divide {name}={dim}; change "
                    "one of them."
                )
        return AutoTaskModule, {
            "n_features": n_features,
            "n_tasks": n_tasks,
            "output_dim": specs[0].output_dim,
            "task_encoding": self.task_encoding,
            "feature_embed_dim": e1,
            "block_embed_dim": int(e2),
            "block_size": int(self.block_size),
            "n_layers": int(self.n_layers),
            "n_heads": int(self.n_heads),
            "dropout": float(self.dropout),
            "task_dropout": float(self.task_dropout),
            "attention": self.attention,
            "attention_window": (
                None if self.attention_window is None else int(self.attention_window)
            ),
            "fusion": self.fusion,
            **(
                {"text_vocab_size": text_vocab_size, "n_text_tokens": n_text_tokens}
                if n_text_tokens
                else {}
            ),
        }

    def fit(self, X, y, soft_target=None, sample_weight=None):
        """Fit on X (features plus the task column) and labels y.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels; they set ``classes_``.
        soft_target : array-like of shape (n_samples,) or (n_samples, 2), optional
            Teacher probabilities of the positive class (binary y only); the
            loss is binary cross-entropy against them instead of the hard
            labels (knowledge distillation). NaN falls back to the row's label.
            With ``Pipeline`` pass it as ``<step>__soft_target``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the training loss (times the
            ``class_weight`` of its hard label): the loss is the weighted mean
            over the rows, so a row of weight 0 contributes nothing and an
            integer weight counts like that many copies of the row. With
            ``Pipeline`` pass it as ``<step>__sample_weight``.

        Returns
        -------
        self
        """
        if soft_target is None:
            return super().fit(X, y, sample_weight=sample_weight)
        shape = np.shape(soft_target)
        if (
            len(shape) not in (1, 2)
            or shape[0] != _num_samples(X)
            or (len(shape) == 2 and shape[1] != 2)
        ):
            raise ValueError(
                "soft_target must have shape (n_samples,) or (n_samples, 2) "
                f"matching X ({_num_samples(X)} rows), got {shape}."
            )
        return super().fit(X, y, sample_weight=sample_weight, soft_target=soft_target)

    def _fit_targets(self, Y, specs, inputs, keep, fit_params):
        soft = fit_params.pop("soft_target", None)
        Y, specs = super()._fit_targets(Y, specs, inputs, keep, fit_params)
        if soft is None:
            return Y, specs
        if specs[0].kind != "binary":
            raise ValueError(
                "soft_target gives teacher probabilities of the positive class, "
                f"so y must be binary; y has {len(specs[0].classes)} classes."
            )
        try:
            soft = np.asarray(soft, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "soft_target must hold probabilities (numbers in [0, 1], NaN to "
                "use the hard label of a row)."
            ) from None
        if soft.ndim == 2 and soft.shape[1] == 2:
            soft = soft[:, 1]
        soft = soft[keep]
        if np.any((soft < 0) | (soft > 1)):
            raise ValueError(
                "soft_target must hold probabilities in [0, 1] (NaN to use the "
                "hard label of a row)."
            )
        Y = Y.copy()
        Y[:, 0] = np.where(np.isnan(soft), Y[:, 0], soft).astype(np.float32)
        return Y, specs

    # ----------------------------------------------------------------- text
    _text_hint = ", or name it in text_columns if it holds text"

    def _text_positions(self, n_columns, names, task_index):
        if self.text_columns is None:
            return []
        return _text.text_column_indices(
            self.text_columns, n_columns, names, task_index
        )

    def _column_texts(self, X) -> list[list[str]]:
        """The texts of each text column of the object array X."""
        names = getattr(self, "feature_names_in_", None)
        j = task_column_index(self.task_column, X.shape[1], names)
        return [
            _text.column_texts(X[:, k], names[k] if names is not None else k)
            for k in self._text_positions(X.shape[1], names, j)
        ]

    def _fit_text_inputs(self, X, resume):
        if self.text_columns is None:
            # A refit without text drops the tokenizer of an earlier fit (a
            # failed fit puts it back with the other fitted attributes).
            vars(self).pop("text_tokenizer_", None)
            vars(self).pop("text_columns_", None)
            return {}, {}, {}
        _text.require_tokenizers()
        if resume and hasattr(self, "text_tokenizer_"):
            self._check_text_columns_unchanged("warm_start=True continues")
        columns = self._column_texts(X)
        if resume and hasattr(self, "text_tokenizer_"):
            # The trained token embeddings belong to the first fit's ids.
            tokenizer = self.text_tokenizer_
        else:
            tokenizer = _text.fit_tokenizer(
                (text for texts in columns for text in texts),
                self.text_vocab_size,
                self.text_min_frequency,
            )
        ids = _text.encode_columns(tokenizer, columns, int(self.max_text_tokens))
        spec = {
            "text_vocab_size": _text.vocabulary_size(tokenizer),
            "n_text_tokens": ids.shape[1],
        }
        fitted = {
            "text_tokenizer_": tokenizer,
            "text_columns_": list(self.text_columns),
        }
        return {"text": ids}, spec, fitted

    def _check_text_columns_unchanged(self, what: str) -> None:
        """Raise if ``text_columns`` differs from the fitted ``text_columns_``:
        the token embeddings and positions belong to the fitted columns."""
        fitted = getattr(self, "text_columns_", None)
        current = None if self.text_columns is None else list(self.text_columns)
        if current != fitted:
            raise ValueError(
                f"text_columns={self.text_columns!r}, but the model was fitted "
                f"with text_columns={fitted!r}; {what} with the fitted "
                "columns, so set text_columns back, or refit with "
                "warm_start=False."
            )

    def _unscaled_predict_inputs(self, X) -> dict:
        if "net_" in vars(self):
            self._check_text_columns_unchanged("prediction reads the text")
        return super()._unscaled_predict_inputs(X)

    def _text_inputs(self, X):
        if self.text_columns is None:
            return {}
        columns = self._column_texts(X)
        return {
            "text": _text.encode_columns(
                self.text_tokenizer_, columns, int(self.max_text_tokens)
            )
        }
