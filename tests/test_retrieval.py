"""evaluate_retrieval against slow per-query loops written from the definitions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine.retrieval import Protocol, RetrievalResult, evaluate_retrieval

# ---------------------------------------------------------------- slow references


def stable_order(row):
    """Gallery indices by distance, ties by index."""
    return sorted(range(len(row)), key=lambda j: (row[j], j))


def loop_evaluate(distmat, qp, gp, qc, gc, max_rank, remove_same_camera=True, junk=(), order_fn=None):
    """One query at a time: rank, drop removed samples, read off AP, first match and INP."""
    aps, inps, firsts = [], [], []
    for i in range(len(qp)):
        order = order_fn(i) if order_fn else stable_order(distmat[i])
        kept = []
        for j in order:
            if gp[j] in junk:
                continue
            if remove_same_camera and gp[j] == qp[i] and gc[j] == qc[i]:
                continue
            kept.append(j)
        hits = [rank for rank, j in enumerate(kept, start=1) if gp[j] == qp[i]]
        if not hits:
            continue
        aps.append(sum(n / r for n, r in enumerate(hits, start=1)) / len(hits))
        inps.append(len(hits) / hits[-1])
        firsts.append(hits[0])
    length = min(max_rank, len(gp))
    cmc = [sum(f <= k for f in firsts) / len(firsts) for k in range(1, length + 1)]
    return {
        "mAP": sum(aps) / len(aps),
        "mINP": sum(inps) / len(inps),
        "cmc": np.array(cmc),
        "n_valid": len(firsts),
        "n_skipped": len(qp) - len(firsts),
    }


def torchreid_style(distmat, qp, gp, qc, gc, max_rank):
    """The Market-1501 evaluation as the torchreid / AGW evaluators compute it (unstable argsort)."""
    indices = np.argsort(distmat, axis=1)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(qp)):
        order = indices[i]
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        raw = (gp[order][keep] == qp[i]).astype(np.int64)
        if not raw.any():
            continue
        cum = raw.cumsum()
        last = np.flatnonzero(raw).max()
        all_inp.append(cum[last] / (last + 1.0))
        cmc = np.minimum(cum, 1)
        all_cmc.append(cmc[:max_rank])
        precision_at = cum / np.arange(1, raw.size + 1)
        all_ap.append((precision_at * raw).sum() / raw.sum())
    return np.mean(all_ap), np.asarray(all_cmc, dtype=np.float32).sum(0) / len(all_cmc), np.mean(all_inp)


def make_data(seed, n_ids=12, n_query=30, n_gallery=120, n_cams=4, dim=16, noise=0.8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    qp = rng.integers(0, n_ids, n_query)
    gp = rng.integers(0, n_ids, n_gallery)
    qc = rng.integers(0, n_cams, n_query)
    gc = rng.integers(0, n_cams, n_gallery)
    qf = centers[qp] + noise * rng.normal(size=(n_query, dim))
    gf = centers[gp] + noise * rng.normal(size=(n_gallery, dim))
    return qf, gf, qp, gp, qc, gc


def cosine_distmat(qf, gf):
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    return 1.0 - qn @ gn.T


def assert_matches(result, ref):
    assert result.mAP == pytest.approx(ref["mAP"], abs=1e-9)
    assert result.mINP == pytest.approx(ref["mINP"], abs=1e-9)
    np.testing.assert_allclose(result.cmc, ref["cmc"], atol=1e-9)
    assert result.n_valid_queries == ref["n_valid"]
    assert result.n_skipped_queries == ref["n_skipped"]


# ---------------------------------------------------------------- against the loops


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block_size", [1, 7, None])
def test_features_against_loop(seed, block_size):
    qf, gf, qp, gp, qc, gc = make_data(seed)
    ref = loop_evaluate(cosine_distmat(qf, gf), qp, gp, qc, gc, max_rank=20)
    result = evaluate_retrieval(
        qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, max_rank=20, block_size=block_size
    )
    assert_matches(result, ref)
    assert result.protocol == Protocol.market1501() and not result.reranked


@pytest.mark.parametrize("seed", range(3))
def test_equals_torchreid_style_on_tie_free_inputs(seed):
    rng = np.random.default_rng(seed)
    nq, ng = 40, 300
    qp, gp = rng.integers(0, 15, nq), rng.integers(0, 15, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    distmat = rng.random((nq, ng))  # continuous: no ties
    qp[0] = 99  # a query with no match: skipped by both
    mAP, cmc, mINP = torchreid_style(distmat, qp, gp, qc, gc, max_rank=50)
    result = evaluate_retrieval(query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, distmat=distmat)
    assert result.mAP == pytest.approx(mAP, abs=1e-6)
    assert result.mINP == pytest.approx(mINP, abs=1e-6)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.n_skipped_queries == 1


def test_float32_features_and_distmat_path_agree():
    qf, gf, qp, gp, qc, gc = make_data(5, n_query=50, n_gallery=200)
    r64 = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf)
    r32 = evaluate_retrieval(
        qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf.astype(np.float32), gallery_feats=gf.astype(np.float32)
    )
    rdm = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, distmat=cosine_distmat(qf, gf))
    for r in (r32, rdm):
        assert r.mAP == pytest.approx(r64.mAP, abs=1e-6)
        np.testing.assert_allclose(r.cmc, r64.cmc, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_query=st.integers(1, 8),
    n_gallery=st.integers(1, 25),
    n_levels=st.integers(1, 4),
    block_size=st.integers(1, 5),
    remove=st.booleans(),
)
def test_ties_against_loop(seed, n_query, n_gallery, n_levels, block_size, remove):
    """Integer distances with few levels: many ties, broken by gallery index in both."""
    rng = np.random.default_rng(seed)
    distmat = rng.integers(0, n_levels, (n_query, n_gallery)).astype(np.float64)
    qp, gp = rng.integers(0, 3, n_query), rng.integers(0, 3, n_gallery)
    qc, gc = rng.integers(0, 2, n_query), rng.integers(0, 2, n_gallery)
    ref_valid = any(
        (gp == qp[i]).any() and (not remove or ((gp == qp[i]) & (gc != qc[i])).any()) for i in range(n_query)
    )
    protocol = Protocol.market1501() if remove else Protocol.no_camera()
    kwargs = dict(distmat=distmat, protocol=protocol, max_rank=10, block_size=block_size)
    if not ref_valid:
        with pytest.raises(ValueError, match="no query identity has a match"):
            evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, **kwargs)
        return
    ref = loop_evaluate(distmat, qp, gp, qc, gc, max_rank=10, remove_same_camera=remove)
    assert_matches(evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, **kwargs), ref)


def test_all_distances_equal():
    distmat = np.zeros((3, 6))
    qp, gp = np.array([0, 1, 2]), np.array([2, 0, 1, 0, 2, 1])
    result = evaluate_retrieval(query_pids=qp, gallery_pids=gp, distmat=distmat)
    # gallery order 0..5: query 0 hits at 2, 4; query 1 at 3, 6; query 2 at 1, 5
    assert result.mAP == pytest.approx(np.mean([(1 / 2 + 2 / 4) / 2, (1 / 3 + 2 / 6) / 2, (1 + 2 / 5) / 2]))
    assert result.mINP == pytest.approx(np.mean([2 / 4, 2 / 6, 2 / 5]))
    np.testing.assert_allclose(result.cmc, [1 / 3, 2 / 3, 1, 1, 1, 1])


# ---------------------------------------------------------------- hand-made cases


def test_hand_made_protocol_cases():
    # gallery: 0:(pid 1, cam 0) 1:(pid 2, cam 1) 2:(pid 1, cam 1) 3:(pid 1, cam 0) 4:(pid -1, cam 1)
    gp, gc = np.array([1, 2, 1, 1, -1]), np.array([0, 1, 1, 0, 1])
    qp, qc = np.array([1, 3]), np.array([0, 0])  # query 1 (pid 3) has no match: skipped
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.05], [0.1, 0.2, 0.3, 0.4, 0.5]])
    # market1501: query 0 drops gallery 0 and 3 (same pid and camera); ranked 4, 1, 2 -> hit at rank 3
    r = evaluate_retrieval(query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, distmat=distmat)
    assert (r.mAP, r.mINP, r.n_valid_queries, r.n_skipped_queries) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 1, 1)
    np.testing.assert_allclose(r.cmc, [0, 0, 1, 1, 1])
    # -1 as junk: ranked 1, 2 -> hit at rank 2
    junk = Protocol.market1501(junk_pids=[-1])
    r = evaluate_retrieval(
        query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, distmat=distmat, protocol=junk
    )
    assert r.mAP == pytest.approx(1 / 2) and r.protocol.junk_pids == (-1,)
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1])  # cut to the 5 gallery samples
    # no cameras: nothing removed; ranked 4, 0, 1, 2, 3 -> hits at 2, 4, 5
    r = evaluate_retrieval(query_pids=qp, gallery_pids=gp, distmat=distmat)
    assert r.protocol == Protocol.no_camera() and r.protocol.remove_same_camera is False
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert r.mINP == pytest.approx(3 / 5)


def test_all_gallery_in_query_camera():
    qf, gf, qp, gp, _, _ = make_data(1)
    qc, gc = np.zeros(len(qp), int), np.zeros(len(gp), int)
    with pytest.raises(ValueError, match="no query identity has a match in the gallery under protocol 'market1501'"):
        evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf)
    r = evaluate_retrieval(
        qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, protocol=Protocol.no_camera()
    )
    assert_matches(r, loop_evaluate(cosine_distmat(qf, gf), qp, gp, qc, gc, 50, remove_same_camera=False))


def test_junk_ids_against_loop():
    qf, gf, qp, gp, qc, gc = make_data(2)
    protocol = Protocol(remove_same_camera=True, junk_pids=(0, 3), name="custom")
    ref = loop_evaluate(cosine_distmat(qf, gf), qp, gp, qc, gc, 50, junk=(0, 3))
    r = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, protocol=protocol)
    assert_matches(r, ref)
    assert r.n_skipped_queries >= np.isin(qp, [0, 3]).sum()  # junk-identity queries have no match left


def test_string_cameras_and_short_cmc():
    qf, gf, qp, gp, qc, gc = make_data(3, n_gallery=8, n_query=5)
    names = np.array(["c1", "c2", "c3", "c4"])
    a = evaluate_retrieval(
        qp,
        gp,
        query_cams=qc,
        gallery_cams=gc,
        query_feats=qf,
        gallery_feats=gf,
        protocol=Protocol.no_camera(),
        max_rank=50,
    )
    assert a.cmc.shape == (8,)
    a = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf)
    b = evaluate_retrieval(qp, gp, query_cams=names[qc], gallery_cams=list(names[gc]), query_feats=qf, gallery_feats=gf)
    assert (a.mAP, a.n_valid_queries) == (b.mAP, b.n_valid_queries)


def test_zero_feature_rows_are_allowed():
    qf, gf, qp, gp, qc, gc = make_data(4)
    gf[3] = 0.0
    r = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf)
    distmat = cosine_distmat(qf, np.where(np.arange(len(gf))[:, None] == 3, 1.0, gf))
    distmat[:, 3] = 1.0  # zero vector: cosine 0
    assert_matches(r, loop_evaluate(distmat, qp, gp, qc, gc, 50))


# ---------------------------------------------------------------- re-ranking


@pytest.mark.parametrize(("seed", "repeat", "k1"), [(6, 1, 8), (7, 1, 8), (8, 3, 20), (9, 3, 20)])
def test_rerank_against_dense(seed, repeat, k1):
    """repeat > 1: every gallery sample appears `repeat` times, so distances tie across the candidate cut."""
    neighbors = pytest.importorskip("labelrefine.neighbors")
    qf, gf, qp, gp, qc, gc = make_data(seed, n_ids=12 // repeat, n_query=30, n_gallery=60 // repeat, n_cams=2)
    gf, gp, gc = (np.repeat(x, repeat, axis=0) for x in (gf, gp, gc))
    k2, lam, n_cand = 3, 0.3, 16
    union = np.concatenate([qf, gf])
    union = union / np.linalg.norm(union, axis=1, keepdims=True)
    coo = neighbors.jaccard_distance(union, k1=k1, k2=k2).tocoo()
    jaccard = np.ones((len(union), len(union)))
    jaccard[coo.row, coo.col] = coo.data
    original = cosine_distmat(qf, gf)

    def reranked_order(i):
        order = stable_order(original[i])
        cands, rest = order[:n_cand], order[n_cand:]
        final = {j: (1 - lam) * jaccard[i, len(qf) + j] + lam * original[i, j] for j in cands}
        return sorted(cands, key=lambda j: (final[j], j)) + rest

    ref = loop_evaluate(original, qp, gp, qc, gc, 50, order_fn=reranked_order)
    r = evaluate_retrieval(
        qp,
        gp,
        query_cams=qc,
        gallery_cams=gc,
        query_feats=qf,
        gallery_feats=gf,
        rerank=True,
        rerank_candidates=n_cand,
        k1=k1,
        k2=k2,
        lambda_value=lam,
        block_size=6,
    )
    assert r.reranked
    assert_matches(r, ref)
    # every gallery sample a candidate: the full dense re-ranking
    full = evaluate_retrieval(
        qp,
        gp,
        query_cams=qc,
        gallery_cams=gc,
        query_feats=qf,
        gallery_feats=gf,
        rerank=True,
        rerank_candidates=10_000,
        k1=k1,
        k2=k2,
    )
    n_cand = len(gf)
    assert_matches(full, loop_evaluate(original, qp, gp, qc, gc, 50, order_fn=reranked_order))


# ---------------------------------------------------------------- invariants


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_permuting_gallery_and_renaming_ids_change_nothing(seed):
    qf, gf, qp, gp, qc, gc = make_data(seed, n_query=10, n_gallery=40)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(gp))
    rename = rng.permutation(100)[:12] + 5
    a = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf)
    b = evaluate_retrieval(
        rename[qp],
        rename[gp][perm],
        query_cams=qc + 7,
        gallery_cams=(gc + 7)[perm],
        query_feats=qf,
        gallery_feats=gf[perm],
        block_size=3,
    )
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12) and a.mINP == pytest.approx(b.mINP, abs=1e-12)
    np.testing.assert_allclose(a.cmc, b.cmc)
    assert np.all(np.diff(a.cmc) >= 0) and 0 <= a.cmc[0] <= a.cmc[-1] <= 1


# ---------------------------------------------------------------- result objects and input handling


def test_result_object():
    qf, gf, qp, gp, qc, gc = make_data(0)
    r = evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, max_rank=10)
    assert isinstance(r, RetrievalResult)
    assert r.rank(1) == r.cmc[0] and r.rank(10) == r.cmc[9] and type(r.rank(5)) is float
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\], got 11"):
        r.rank(11)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.mAP = 1.0
    assert r.cmc.flags.writeable  # torch.from_numpy(r.cmc) works without a warning
    text = str(r)
    assert "mAP" in text and "Rank-1" in text and "market1501" in text and "re-ranking off" in text
    assert "RetrievalResult(mAP=" in repr(r)
    assert type(r.mAP) is float and type(r.n_valid_queries) is int


def test_inputs_untouched():
    qf, gf, qp, gp, qc, gc = make_data(0)
    copies = [x.copy() for x in (qf, gf, qp, gp, qc, gc)]
    evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, query_feats=qf, gallery_feats=gf, block_size=4)
    distmat = cosine_distmat(qf, gf)
    dm_copy = distmat.copy()
    evaluate_retrieval(qp, gp, query_cams=qc, gallery_cams=gc, distmat=distmat)
    for x, c in zip((qf, gf, qp, gp, qc, gc), copies, strict=True):
        np.testing.assert_array_equal(x, c)
    np.testing.assert_array_equal(distmat, dm_copy)


def test_protocol_validation():
    assert Protocol.market1501() == Protocol()
    assert not hasattr(Protocol, "standard")  # one name per protocol
    assert Protocol(junk_pids=[3, -1, 3]).junk_pids == (-1, 3)
    with pytest.raises(TypeError, match="remove_same_camera must be a bool, got 'yes'"):
        Protocol(remove_same_camera="yes")
    with pytest.raises(TypeError, match=r"junk_pids must hold integer identities, got \(1.5,\)"):
        Protocol(junk_pids=(1.5,))
    with pytest.raises(TypeError, match="junk_pids must be a sequence of integer identities, got 3"):
        Protocol(junk_pids=3)
    with pytest.raises(TypeError, match="name must be a string, got 5"):
        Protocol(name=5)


def bad_cases():
    qf, gf, qp, gp, qc, gc = make_data(0, n_query=4, n_gallery=10)
    dm = cosine_distmat(qf, gf)
    nan_dm = dm.copy()
    nan_dm[2, 1] = np.nan
    base = dict(query_feats=qf, gallery_feats=gf, query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc)
    no_feats = {**base, "query_feats": None, "gallery_feats": None}
    return [
        # a length mismatch names both arrays and both lengths: either one may be the wrong one
        ({**base, "query_pids": qp[:3]}, ValueError, r"same length .*got query_pids=3, query_cams=4"),
        ({**base, "query_feats": qf[:3]}, ValueError, r"same length .*got query_pids=4, query_feats=3"),
        ({**base, "gallery_feats": gf[:7]}, ValueError, r"same length .*got gallery_pids=10, gallery_feats=7"),
        ({**base, "gallery_pids": gp + 0.5}, TypeError, "gallery_pids must hold integers"),
        ({**base, "query_pids": qp[:0]}, ValueError, "must not be empty, got lengths 0 and 10"),
        ({**base, "gallery_cams": None}, ValueError, "given together or not at all, got only query_cams"),
        ({**base, "query_cams": qc[:2]}, ValueError, r"same length .*got query_pids=4, query_cams=2"),
        ({**base, "gallery_cams": None, "query_cams": None, "protocol": Protocol()}, ValueError, "remove_same_camera"),
        ({**base, "protocol": "market1501"}, TypeError, "protocol must be a labelrefine.retrieval.Protocol, got str"),
        ({**base, "max_rank": 0}, ValueError, r"max_rank must be in \[1, inf\], got 0"),
        ({**base, "block_size": 2.5}, TypeError, "block_size must be an integer, got 2.5"),
        ({**base, "rerank": "yes"}, TypeError, "rerank must be a bool, got 'yes'"),
        ({**base, "distmat": dm}, ValueError, "either query_feats/gallery_feats or distmat, got both"),
        ({**base, "gallery_feats": None}, ValueError, "query_feats and gallery_feats are required"),
        ({**base, "gallery_feats": gf[:, :3]}, ValueError, "same number of columns, got 16 and 3"),
        ({**base, "query_feats": qf.astype(int)}, TypeError, "query_feats must be float32 or float64"),
        ({**no_feats, "distmat": dm[:, :5]}, ValueError, r"distmat must have shape .* = \(4, 10\), got \(4, 5\)"),
        ({**no_feats, "distmat": dm.astype(int)}, TypeError, "distmat must be float32 or float64"),
        ({**no_feats, "distmat": nan_dm}, ValueError, r"distmat must be finite, got NaN .*\(first in row 2\)"),
        ({**no_feats, "distmat": dm, "rerank": True}, ValueError, "rerank=True needs query_feats and gallery_feats"),
        ({**base, "rerank_candidates": 0}, ValueError, r"rerank_candidates must be in \[1, inf\]"),
        ({**base, "rerank": True, "lambda_value": 1.5}, ValueError, r"lambda_value must be in \[0, 1\], got 1.5"),
    ]


def test_features_are_keyword_only():
    qf, gf, qp, gp, _, _ = make_data(0, n_query=4, n_gallery=10)
    with pytest.raises(TypeError, match="positional argument"):
        evaluate_retrieval(qf, gf, qp, gp)  # the old positional order


@pytest.mark.parametrize(("kwargs", "error", "match"), bad_cases())
def test_bad_input_messages(kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_retrieval(**{"block_size": 2, **kwargs})


# ---------------------------------------------------------------- private kernels against loops


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n_rows=st.integers(1, 5), n_cols=st.integers(1, 12), n=st.integers(1, 14))
def test_stable_top_kernel(seed, n_rows, n_cols, n):
    from labelrefine.retrieval import _stable_top

    d = np.random.default_rng(seed).integers(0, 3, (n_rows, n_cols)).astype(float)
    expected = np.zeros(d.shape, dtype=bool)
    for i in range(n_rows):
        expected[i, stable_order(d[i])[:n]] = True
    np.testing.assert_array_equal(_stable_top(d, n), expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n_rows=st.integers(1, 5), n_cols=st.integers(1, 12), chunk=st.integers(1, 4))
def test_positive_ranks_kernel(seed, n_rows, n_cols, chunk):
    from labelrefine.retrieval import _positive_ranks

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, (n_rows, n_cols)).astype(float)
    members = rng.random((n_rows, n_cols)) < 0.8
    positive = members & (rng.random((n_rows, n_cols)) < 0.4)
    rows, ranks = _positive_ranks(values, members, positive, chunk)
    got = sorted(zip(rows.tolist(), ranks.tolist(), strict=True))
    expected = []
    for i in range(n_rows):
        ranked = [j for j in stable_order(values[i]) if members[i, j]]
        expected += [(i, r) for r, j in enumerate(ranked, start=1) if positive[i, j]]
    assert got == sorted(expected)
