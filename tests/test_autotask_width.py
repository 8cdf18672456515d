"""AutoTask at production width: windowed attention in facet 1, the width
of facet 2 (``block_embed_dim``), and the paper's discussion ablations
(``attention="full"``, ``fusion="sum"``)."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from mtlestimators import AutoTaskClassifier
from mtlestimators.autotask._autotask import (
    AUTO_BLOCK_EMBED_DIM,
    AutoTaskModule,
    CausalSelfAttention,
)


def chunked_reference(q, k, v, chunk):
    """Attention with an explicit (T, T) mask: position i sees j <= i from
    the start of the chunk before its own."""
    T = q.shape[-2]
    i = torch.arange(T).view(-1, 1)
    j = torch.arange(T).view(1, -1)
    mask = (j <= i) & (j >= (i // chunk - 1) * chunk)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("T, chunk", [(10, 3), (12, 4), (13, 5), (7, 1), (25, 8)])
def test_chunked_attention_equals_its_mask(T, chunk):
    torch.manual_seed(0)
    attn = CausalSelfAttention(8, 2, causal=True, window=chunk)
    q, k, v = (torch.randn(3, 2, T, 4) for _ in range(3))
    got = attn._chunked(q, k, v, T)
    torch.testing.assert_close(got, chunked_reference(q, k, v, chunk))


@pytest.mark.parametrize("causal", [True, False])
def test_up_to_two_chunks_is_plain_attention(causal):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 8)
    windowed = CausalSelfAttention(8, 2, causal=causal, window=3)
    plain = CausalSelfAttention(8, 2, causal=causal, window=None)
    plain.load_state_dict(windowed.state_dict())
    torch.testing.assert_close(windowed(x), plain(x))


def _module(n_features=11, **kwargs):
    params = dict(n_features=n_features, n_tasks=3, feature_embed_dim=4)
    params.setdefault("block_embed_dim", 8)
    params.update(kwargs)
    torch.manual_seed(0)
    return AutoTaskModule(**params).eval()


def test_facet_1_sees_only_its_chunk_and_the_chunk_before():
    net = _module(attention_window=3, dropout=0.0)  # 12 tokens, one layer
    features = torch.randn(5, 11)
    task = torch.tensor([1, 2, 3, 0, 1])
    x = net.tokens(features, task)
    before = net.feature_tokens(x, task)
    changed = x.clone()
    changed[:, 4] += 3.0
    after = net.feature_tokens(changed, task)
    # chunks 0-2, 3-5, 6-8, 9-11: token 4 reaches the later tokens of its
    # chunk and the next chunk, and no other
    torch.testing.assert_close(after[:, :4], before[:, :4])
    torch.testing.assert_close(after[:, 9:], before[:, 9:])
    assert not torch.allclose(after[:, 8], before[:, 8])


def test_full_attention_is_not_causal():
    net = _module(attention="full", dropout=0.0)
    features = torch.randn(5, 11)
    task = torch.tensor([1, 2, 3, 0, 1])
    x = net.tokens(features, task)
    changed = x.clone()
    changed[:, -1] += 3.0  # the last token now reaches the first
    before, after = net.feature_tokens(x, task), net.feature_tokens(changed, task)
    assert not torch.allclose(after[:, 0], before[:, 0])


def test_the_task_number_joins_the_features_scaled_to_0_1():
    net = _module(n_tasks=1000, block_embed_dim=8)
    task = torch.tensor([0, 1, 500, 1000])
    x = net.tokens(torch.zeros(4, 11), task)
    torch.testing.assert_close(x[:, -1], torch.tensor([0.0, 0.001, 0.5, 1.0]))


def _wide(n=400, d=150, seed=0):
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(n, d))
    task = rng.randint(3, size=n)
    logit = features[:, 0] - features[:, d - 1] + 0.8 * (task - 1)
    y = (logit + 0.3 * rng.normal(size=n) > 0).astype(int)
    return np.column_stack([features, task]), y


def _e2(model):
    return model.net_.module_.facet_2.ln_f.normalized_shape[0]


def test_auto_width_caps_facet_2_and_paper_keeps_d_times_e1():
    X, y = _wide(n=64, d=30)
    quick = dict(max_epochs=1, verbose=0, random_state=0)
    d = 30 + 1  # features plus the task number
    assert _e2(AutoTaskClassifier(**quick).fit(X, y)) == AUTO_BLOCK_EMBED_DIM
    assert _e2(AutoTaskClassifier(block_embed_dim="paper", **quick).fit(X, y)) == d * 8
    assert _e2(AutoTaskClassifier(block_embed_dim=16, **quick).fit(X, y)) == 16
    narrow = AutoTaskClassifier(**quick).fit(X[:, -4:], y)  # 3 features + task
    assert _e2(narrow) == 4 * 8  # below the cap: the paper's d * e1


def test_parameters_grow_linearly_in_d_at_the_defaults():
    def n_params(d, **kwargs):
        module = AutoTaskModule(
            n_features=d,
            n_tasks=10,
            block_embed_dim=kwargs.pop("e2", AUTO_BLOCK_EMBED_DIM),
            attention_window=128,
            **kwargs,
        )
        return sum(p.numel() for p in module.parameters())

    # d = 512, 1024, 2048 tokens: the weights are affine in d (equal slopes)
    counts = [n_params(d - 1) for d in (512, 1024, 2048)]
    assert counts[2] - counts[1] == 2 * (counts[1] - counts[0])
    paper = [n_params(d - 1, e2=d * 8) for d in (512, 1024, 2048)]
    assert paper[2] - paper[1] > 3.9 * (paper[1] - paper[0])  # d**2


def test_fusion_sum_needs_equal_widths():
    X, y = _wide(n=64, d=20)
    quick = dict(max_epochs=1, verbose=0, random_state=0)
    model = AutoTaskClassifier(fusion="sum", **quick).fit(X, y)
    assert _e2(model) == 21 * 8  # "auto" is "paper" with fusion="sum"
    assert model.net_.module_.head.in_features == 21 * 8
    with pytest.raises(ValueError, match="block_embed_dim='paper'"):
        AutoTaskClassifier(fusion="sum", block_embed_dim=16, **quick).fit(X, y)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"attention": "bidirectional"}, "attention"),
        ({"fusion": "product"}, "fusion"),
        ({"attention_window": 0}, "attention_window"),
        ({"block_embed_dim": "wide"}, "block_embed_dim"),
    ],
)
def test_bad_width_settings_are_refused(params, message):
    X, y = _wide(n=32, d=5)
    with pytest.raises((ValueError, TypeError), match=message):
        AutoTaskClassifier(max_epochs=1, verbose=0, **params).fit(X, y)


def test_learns_wider_than_the_window():
    X, y = _wide(n=1500, d=300)  # 301 tokens: chunks of 128
    model = AutoTaskClassifier(max_epochs=15, verbose=0, random_state=0)
    model.fit(X[:1000], y[:1000])
    auc = roc_auc_score(y[1000:], model.predict_proba(X[1000:])[:, 1])
    # a constant scores 0.5; attention_window=None scored the same 0.805
    assert auc > 0.75, auc
    # each row is scored alone: a row's score does not depend on the batch
    one = model.predict_proba(X[1000:1001])
    np.testing.assert_allclose(one, model.predict_proba(X[1000:1100])[:1], atol=1e-6)


def test_onnx_export_of_windowed_attention_matches_predict_proba(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from mtlestimators.export import export_onnx, prepare_inputs

    X, y = _wide(n=200, d=20)
    model = AutoTaskClassifier(
        attention_window=6, max_epochs=2, verbose=0, random_state=0
    ).fit(X, y)
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")))
    inputs = prepare_inputs(model, X[:37])
    (got,) = session.run(None, inputs)
    np.testing.assert_allclose(got, model.predict_proba(X[:37]), atol=1e-5)


def test_auto_width_is_divisible_by_the_heads():
    X, y = _wide(n=64, d=20)
    model = AutoTaskClassifier(
        n_heads=3, feature_embed_dim=6, max_epochs=1, verbose=0, random_state=0
    ).fit(X, y)
    assert _e2(model) == 63  # the cap 64, down to a multiple of 3


def test_block_embed_dim_none_is_the_old_spelling_of_paper():
    X, y = _wide(n=64, d=10)
    with pytest.warns(FutureWarning, match="block_embed_dim='paper'"):
        model = AutoTaskClassifier(
            block_embed_dim=None, max_epochs=1, verbose=0, random_state=0
        ).fit(X, y)
    assert _e2(model) == 11 * 8


def test_a_model_pickled_before_the_new_settings_still_predicts():
    X, y = _wide(n=100, d=6)
    model = AutoTaskClassifier(max_epochs=1, verbose=0, random_state=0).fit(X, y)
    expected = model.predict_proba(X[:10])
    # what an older pickle lacks: the new parameters and module settings
    for name in ("text_columns", "attention", "attention_window", "fusion"):
        vars(model).pop(name)
    net = model.net_.module_
    del net.fusion
    for block in (*net.facet_1.blocks, *net.facet_2.blocks):
        del block.attn.causal, block.attn.window
    np.testing.assert_allclose(model.predict_proba(X[:10]), expected)
    del net.n_tasks  # trained on raw task codes
    assert model.predict_proba(X[:10]).shape == (10, 2)


def test_predict_shortcut_gives_validate_datas_errors_and_warnings():
    X, y = _wide(n=80, d=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "task"])
    quick = dict(max_epochs=1, verbose=0, random_state=0)
    on_frame = AutoTaskClassifier(task_column="task", **quick).fit(frame, y)
    on_array = AutoTaskClassifier(**quick).fit(X, y)
    before = {k: v for k, v in vars(on_frame).items() if k != "net_"}
    on_frame.predict_proba(frame[:3])
    assert {k: v for k, v in vars(on_frame).items() if k != "net_"}.keys() == (
        before.keys()
    )
    with pytest.raises(ValueError, match="feature names"):
        on_frame.predict_proba(frame[["b", "a", "c", "d", "task"]][:3])
    with pytest.raises(ValueError):
        on_frame.predict_proba(frame.drop(columns="d")[:3])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        on_frame.predict_proba(X[:3])
    with pytest.warns(UserWarning, match="has feature names"):
        on_array.predict_proba(frame[:3])
    with pytest.raises(ValueError, match="5 features"):
        on_array.predict_proba(X[:3, :4])
    with pytest.raises(ValueError):
        on_array.predict_proba(X[0])  # 1-D
    with pytest.raises(ValueError):
        on_array.predict_proba(X[:0])  # no rows
    missing = frame[:3].astype(object)
    missing.iloc[0, 1] = pd.NA
    with pytest.raises(ValueError, match="NaN"):
        on_frame.predict_proba(missing)


def test_adam_runs_fused_unless_told_otherwise():
    X, y = _wide(n=64, d=4)
    quick = dict(max_epochs=1, verbose=0, random_state=0)

    def group(**params):
        model = AutoTaskClassifier(**quick, **params).fit(X, y)
        return model.net_.optimizer_.param_groups[0]

    assert group()["fused"] is True
    assert group(optimizer="adamw")["fused"] is True
    assert not group(optimizer__foreach=True)["fused"]
    assert not group(optimizer__fused=False)["fused"]
    assert not group(optimizer="sgd").get("fused")  # SGD keeps its default
