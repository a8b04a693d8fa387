"""Every registered architecture: shapes, ONNX export, ONNX Runtime parity, dynamic batch, sizes.

The registry tests run without PyTorch; the rest need the ``train`` extra (torch, onnx) and skip
otherwise. Parity tolerance: max |PyTorch − ONNX Runtime| of the probabilities ≤ 1e-4.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from affectstream.models import registry

if TYPE_CHECKING:
    from affectstream.models.architectures.bddae import BDDAE

REPO = Path(__file__).resolve().parents[2]
NAMES = registry.names()
PARITY_TOL = 1e-4
HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "onnxruntime"))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs the train extra (torch, onnx)")

# Parameter counts. The gupta-ayushi Keras summaries (docs/models.md#cnn-rnn-baselines:
# 721,540 / 392,644 / 467,908 with a 4-class head); ours have a 2-unit head, and PyTorch's LSTM
# carries a second bias vector (4·hidden per layer and direction). Keras's reset_after GRU already
# has two, so that count matches exactly.
EXACT_PARAMS = {
    "lstm": 721_540 - (128 * 4 + 4) + (128 * 2 + 2) + 4 * (256 + 128 + 64 + 32),
    "gru": 392_644 - (128 * 4 + 4) + (128 * 2 + 2),
    "bilstm": 467_908 - (64 * 4 + 4) + (64 * 2 + 2) + 2 * 4 * (128 + 64),
}
PARAM_RANGES = {
    "cnn-lstm": (200_000, 1_000_000),
    "rtcan1d": (100_000, 500_000),
    "rtcan1d-music": (1_500_000, 2_500_000),  # 6373 music features × 256 dominate
    "music-mlp": (1_600_000, 1_700_000),  # 6373 × 256 + 256 × 128 + 128 × 2 (+ biases)
    "mlstm-fcn": (200_000, 500_000),
    "bimodal-lstm": (100_000, 300_000),
    "rtcan1d-bvp": (300_000, 700_000),  # two RTCAN-1D trunks (256 + 448 features)
    "bddae": (20_000, 40_000),  # 26,066: encoders + decoders + head; 12,994 of it exported
}


# ------------------------------------------------------------------------------ registry, no torch


def test_every_name_has_a_size_check() -> None:
    assert set(NAMES) == set(EXACT_PARAMS) | set(PARAM_RANGES)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_consistent(name: str) -> None:
    arch = registry.get(name)
    assert arch.module.startswith("affectstream.models.architectures.")
    assert len(set(arch.input_names)) == len(arch.input_names)
    assert arch.description and arch.paper
    shapes = registry.default_input_shapes(name)
    assert list(shapes) == list(arch.input_names)
    assert registry.resolve_dims(name, shapes) == dict(arch.defaults)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="bimodal-lstm"):
        registry.get("transformer")


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"eeg_grid": (128, 9, 9)}, "expected"),  # periph missing
        ({"eeg_grid": (128, 9, 9), "periph": (128, 8), "x": (1,)}, "expected"),
        ({"eeg_grid": (128, 9, 9), "periph": (128,)}, "has shape"),  # rank
        ({"eeg_grid": (128, 8, 9), "periph": (128, 8)}, "has shape"),  # fixed 9 × 9
        ({"eeg_grid": (128, 9, 9), "periph": (256, 8)}, "n_times"),  # one window length
        ({"eeg_grid": (0, 9, 9), "periph": (0, 8)}, "has shape"),
    ],
)
def test_resolve_dims_rejects_inconsistent_shapes(
    shapes: dict[str, tuple[int, ...]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        registry.resolve_dims("cnn-lstm", shapes)


def test_build_refuses_sizes_given_twice() -> None:
    with pytest.raises(ValueError, match="n_times"):
        registry.build("rtcan1d", {"eda": (3, 320)}, n_times=2500)


def test_registry_imports_without_torch() -> None:
    """The service lists architectures without torch installed (docs/architecture.md#layers)."""
    script = textwrap.dedent(
        """
        import importlib.abc
        import sys

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError(f"blocked by the test: {name}")
                return None

        sys.meta_path.insert(0, BlockTorch())
        from affectstream.models import registry

        for name in registry.names():
            registry.resolve_dims(name, registry.default_input_shapes(name))
        try:
            registry.build("rtcan1d")
        except ImportError:
            pass
        else:
            raise SystemExit("build() ran with torch blocked")
        assert "torch" not in sys.modules, "registry imported torch"
        print(",".join(registry.names()))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(",") == NAMES


# ------------------------------------------------------------------------------ models (torch)


def _random_inputs(shapes: dict[str, tuple[int, ...]], batch: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((batch, *s)).astype(np.float32) for k, s in shapes.items()}


def _build(name: str, **hyper: Any) -> Any:
    """Seeded model whose batch norms have non-trivial statistics and affine terms, so export must
    get them right (fresh BN is the identity in eval mode, and RTCAN's non-local BN starts at 0)."""
    import torch

    torch.manual_seed(0)
    model = registry.build(name, **hyper)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.1)
    return model.eval()


@dataclass
class Exported:
    name: str
    model: Any
    shapes: dict[str, tuple[int, ...]]
    path: Path


@pytest.fixture(scope="module", params=NAMES)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    if not HAS_TORCH:
        pytest.skip("needs the train extra (torch, onnx)")
    from affectstream.models.export import export_onnx

    name: str = request.param
    model = _build(name)
    shapes = registry.default_input_shapes(name)
    path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    export_onnx(model, shapes, path, metadata={"architecture": name, "schema": "test"})
    return Exported(name, model, shapes, path)


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_two_logits_and_trains(name: str) -> None:
    import torch

    model = _build(name)
    inputs = [
        torch.from_numpy(x)
        for x in _random_inputs(registry.default_input_shapes(name), 3, 1).values()
    ]
    with torch.no_grad():
        logits = model(*inputs)
    assert logits.shape == (3, 2) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()

    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(*inputs), torch.ones(3, 2))
    if hasattr(model, "auxiliary_loss"):  # what training/train.py adds (BDDAE: its decoders)
        loss = loss + model.auxiliary_loss(*inputs)
    loss.backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@needs_torch
def test_onnx_matches_pytorch(exported: Exported) -> None:
    from affectstream.models.export import onnx_parity

    inputs = _random_inputs(exported.shapes, 3, 2)
    assert onnx_parity(exported.model, exported.path, inputs) <= PARITY_TOL


@needs_torch
@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_batch_axis_is_dynamic(exported: Exported, batch: int) -> None:
    import onnxruntime as ort
    import torch

    inputs = _random_inputs(exported.shapes, batch, 3)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (probs,) = session.run(["probs"], inputs)
    assert probs.shape == (batch, 2) and ((probs >= 0) & (probs <= 1)).all()
    with torch.no_grad():
        expected = torch.sigmoid(exported.model(*map(torch.from_numpy, inputs.values()))).numpy()
    np.testing.assert_allclose(probs, expected, rtol=0, atol=PARITY_TOL)


@needs_torch
def test_onnx_names_inputs_and_carries_metadata(exported: Exported) -> None:
    import onnx

    proto = onnx.load(str(exported.path))
    graph_inputs = {i.name: i for i in proto.graph.input}
    assert list(graph_inputs) == list(registry.get(exported.name).input_names)
    for name, shape in exported.shapes.items():
        dims = graph_inputs[name].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert tuple(d.dim_value for d in dims[1:]) == shape
    assert [o.name for o in proto.graph.output] == ["probs"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta == {"architecture": exported.name, "schema": "test"}


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name: str) -> None:
    model = registry.build(name)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params:,} parameters")
    if name in EXACT_PARAMS:
        assert n_params == EXACT_PARAMS[name]
    else:
        low, high = PARAM_RANGES[name]
        assert low <= n_params <= high


# ------------------------------------------------------------------------------ per-architecture


@needs_torch
def test_export_restores_training_mode(tmp_path: Path) -> None:
    from affectstream.models.export import export_onnx

    model = _build("bimodal-lstm").train()
    export_onnx(model, registry.default_input_shapes("bimodal-lstm"), tmp_path / "m.onnx")
    assert model.training


@needs_torch
@pytest.mark.parametrize(("n_times", "feature_dim"), [(2500, 896), (2560, 896), (320, 256)])
def test_rtcan1d_any_length_and_code_sizes_at_2500(n_times: int, feature_dim: int) -> None:
    """At the code's L = 2500 the EDA vector is 896 long (docs/models.md#rtcan-1d)."""
    import torch

    model = registry.build("rtcan1d", {"eda": (3, n_times)}).eval()
    assert model.feature_dim == feature_dim
    with torch.no_grad():
        assert model(torch.randn(2, 3, n_times)).shape == (2, 2)


def test_rtcan1d_refuses_a_window_too_short_for_three_clips() -> None:
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="too few"):
        registry.build("rtcan1d", {"eda": (3, 9)})


@needs_torch
def test_rtcan1d_non_local_block_starts_as_identity() -> None:
    import torch

    from affectstream.models.architectures.rtcan1d import NonLocal1D

    block = NonLocal1D().eval()
    x = torch.randn(2, 64, 53)
    with torch.no_grad():
        assert torch.equal(block(x), x)


@needs_torch
def test_cnn_lstm_frame_wise_variant_exports(tmp_path: Path) -> None:
    """Yang's per-frame CNN (the costly layout, kept for comparison) also exports and matches."""
    from affectstream.models.export import export_onnx, onnx_parity

    model = _build("cnn-lstm", frame_wise=True)
    shapes = registry.default_input_shapes("cnn-lstm")
    export_onnx(model, shapes, tmp_path / "frame_wise.onnx")
    inputs = _random_inputs(shapes, 3, 4)  # not the batch of 2 it was traced with
    assert onnx_parity(model, tmp_path / "frame_wise.onnx", inputs) <= PARITY_TOL


# ------------------------------------------------------------------------------ BDDAE


def _bddae(shapes: Mapping[str, tuple[int, ...]] | None = None, **hyper: Any) -> BDDAE:
    from affectstream.models.architectures.bddae import BDDAE

    model = registry.build("bddae", shapes, **hyper)
    assert isinstance(model, BDDAE)
    return model


def _bddae_inputs(batch: int, seed: int, n_steps: int = 1) -> tuple[Any, Any]:
    """Standardised-looking features with structure an autoencoder can learn: 4 latent factors
    mixed linearly into 128 EEG and 48 peripheral features, plus a little noise."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    mix = torch.Generator().manual_seed(1234)  # one mixing for every batch
    latent = torch.randn(batch, n_steps, 4, generator=gen)
    eeg = latent @ torch.randn(4, 128, generator=mix) / 2
    periph = latent @ torch.randn(4, 48, generator=mix) / 2
    eeg = eeg + 0.1 * torch.randn(eeg.shape, generator=gen)
    periph = periph + 0.1 * torch.randn(periph.shape, generator=gen)
    return eeg, periph


@needs_torch
@pytest.mark.parametrize("n_steps", [1, 3])
def test_bddae_shapes(n_steps: int) -> None:
    import torch

    shapes = {"eeg_de": (n_steps, 128), "periph_stats": (n_steps, 48)}
    model = _bddae(shapes, hidden_eeg=20, hidden_periph=10, hidden_shared=6)
    eeg, periph = _bddae_inputs(5, 0, n_steps)
    assert model(eeg, periph).shape == (5, 2)
    assert model.encode(eeg, periph).shape == (5, 6)
    rec_eeg, rec_periph = model.reconstruct(eeg, periph)
    assert rec_eeg.shape == eeg.shape and rec_periph.shape == periph.shape
    loss = model.auxiliary_loss(eeg, periph)
    assert loss.shape == () and torch.isfinite(loss) and loss > 0


@needs_torch
@pytest.mark.parametrize(("noise", "level"), [("dropout", 0.3), ("gaussian", 0.5)])
def test_bddae_corruption_only_in_training_mode(noise: str, level: float) -> None:
    import torch

    torch.manual_seed(0)
    model = _bddae(noise=noise, corruption=level)
    x = torch.randn(64, 1, 128)
    eeg, periph = _bddae_inputs(8, 1)

    model.eval()
    assert model.corrupt(x) is x
    with torch.no_grad():
        assert torch.equal(model(eeg, periph), model(eeg, periph))

    model.train()
    noisy = model.corrupt(x)
    assert noisy.shape == x.shape and not torch.equal(noisy, x)
    if noise == "dropout":  # masked features are 0, the others scaled by 1 / (1 - p)
        masked = noisy == 0
        assert abs(float(masked.float().mean()) - level) < 0.03
        torch.testing.assert_close(noisy[~masked], x[~masked] / (1 - level))
    else:
        assert abs(float((noisy - x).std()) - level) < 0.03
    with torch.no_grad():
        assert not torch.equal(model(eeg, periph), model(eeg, periph))
        # the corruption is the only thing training mode changes
        model.corruption = 0.0
        train_out = model(eeg, periph)
        model.eval()
        torch.testing.assert_close(train_out, model(eeg, periph), rtol=0, atol=0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for the test (tiny layers on a shared 2-core machine run
    many times faster so), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@needs_torch
@pytest.mark.usefixtures("one_thread")
def test_bddae_reconstruction_loss_decreases_with_training() -> None:
    """100 Adam steps on the joint loss (classification + reconstruction of corrupted inputs, as
    training/train.py runs it) lower the clean reconstruction error of held-out samples, below
    that of predicting every feature's mean (0): the decoders learnt the data's structure."""
    import torch

    torch.manual_seed(0)
    model = _bddae()
    eeg, periph = _bddae_inputs(64, 2)
    held_eeg, held_periph = _bddae_inputs(64, 3)
    y = (eeg[:, 0, :1] > 0).float().expand(-1, 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)

    def held_out_error() -> float:
        model.eval()
        with torch.no_grad():
            return float(model.reconstruction_loss(held_eeg, held_periph))

    mean_only = float((held_eeg.pow(2).mean() + held_periph.pow(2).mean()) / 2)
    before = held_out_error()
    train_losses = []
    for _ in range(100):
        model.train()
        opt.zero_grad()
        aux = model.auxiliary_loss(eeg, periph)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(eeg, periph), y) + aux
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        train_losses.append(float(aux.detach()))
    after = held_out_error()
    print(f"held-out reconstruction MSE {before:.3f} → {after:.3f} (mean only {mean_only:.3f})")
    assert after < 0.7 * before and after < 0.75 * mean_only
    assert np.mean(train_losses[-10:]) < 0.7 * np.mean(train_losses[:10])


@needs_torch
def test_bddae_exports_encoders_and_classifier_only(tmp_path: Path) -> None:
    """The serving graph: no decoder weights, no random op; exported in training mode too."""
    import onnx

    from affectstream.models.export import export_onnx, onnx_parity

    model = _bddae().train()
    shapes = registry.default_input_shapes("bddae")
    export_onnx(model, shapes, tmp_path / "bddae.onnx")
    proto = onnx.load(str(tmp_path / "bddae.onnx"))
    served = (model.eeg_encoder, model.periph_encoder, model.shared_encoder, model.classifier)
    n_served = sum(p.numel() for m in served for p in m.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    stored = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    assert stored == n_served < n_all
    assert not any("decoder" in t.name for t in proto.graph.initializer)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "RandomNormal", "RandomNormalLike", "RandomUniformLike"}
    assert model.training  # restored
    inputs = _random_inputs(shapes, 3, 5)
    assert onnx_parity(model.eval(), tmp_path / "bddae.onnx", inputs) <= PARITY_TOL


@needs_torch
@pytest.mark.parametrize(
    ("hyper", "message"),
    [
        ({"noise": "salt"}, "noise"),
        ({"corruption": 1.0}, "corruption"),
        ({"noise": "gaussian", "corruption": -0.1}, "corruption"),
        ({"recon_weight": -1.0}, "recon_weight"),
    ],
)
def test_bddae_refuses_bad_settings(hyper: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.build("bddae", **hyper)
