"""cnnkit.optim against torch.optim: same parameters, same gradients, same numbers every step."""
import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from cnnkit.nn.parameter import Parameter
from cnnkit.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    flatten_state_dict,
    lr_scheduler,
    unflatten_state_dict,
)

SHAPES = [(3, 4), (5,), (2, 3, 2)]
STEPS = 10
# torch rounds ``a + alpha * b`` with one fused multiply-add, NumPy with two roundings, so values
# that cancel to near zero may differ by an ulp of the operands: atol is a few ulps of the largest
# value. A wrong sign or a missing term is off by ~lr · grad, orders of magnitude more.
RTOL = {np.float32: 1e-6, np.float64: 1e-13}


def make_params(dtype, seed=0):
    """The same random starting values as cnnkit Parameters and as torch Parameters."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    return ([Parameter(a.copy()) for a in arrays],
            [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays])


def gradients(dtype, step, seed=1):
    """Random gradients for one step; the middle parameter has none on odd steps (skipped)."""
    rng = np.random.default_rng([seed, step])
    grads = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    if step % 2:
        grads[1] = None
    return grads


def set_grads(params, grads, to_torch):
    for p, g in zip(params, grads):
        p.grad = None if g is None else (torch.from_numpy(g.copy()) if to_torch else g.copy())


def groups_of(params, spec):
    """``spec`` None: a plain list; else a list of (parameter indices, group options)."""
    if spec is None:
        return list(params)
    return [{"params": [params[i] for i in indices], **options} for indices, options in spec]


def assert_close(actual, expected, dtype, message=""):
    assert actual.dtype == dtype
    atol = 4 * np.finfo(dtype).eps * np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=atol, err_msg=message)


def assert_params_match(ours, theirs, dtype, step):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert_close(p.data, q.detach().numpy(), dtype, f"parameter {i} after step {step}")


TWO_GROUPS = [([0, 2], {"lr": 0.05}), ([1], {})]

SGD_CASES = [
    ({"lr": 0.1}, None),
    ({"lr": 0.1, "momentum": 0.9}, None),
    ({"lr": 0.1, "momentum": 0.9, "dampening": 0.3}, None),
    ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, None),
    ({"lr": 0.1, "weight_decay": 0.05}, None),
    ({"lr": 0.1, "maximize": True}, None),
    ({"lr": 0.1, "momentum": 0.8, "weight_decay": 0.1, "nesterov": True, "maximize": True}, None),
    ({"lr": 0.1, "momentum": 0.9}, [([0, 2], {"lr": 0.05, "momentum": 0.5}), ([1], {})]),
]

ADAM_CASES = [
    ({"lr": 0.01}, None),
    ({"lr": 0.01, "amsgrad": True}, None),
    ({"lr": 0.01, "weight_decay": 0.1}, None),
    ({"lr": 0.01, "maximize": True}, None),
    # beta1 < 0.5 takes torch.lerp's other rounding branch; a large eps shows where it is added.
    ({"lr": 0.01, "betas": (0.3, 0.5), "eps": 0.1}, None),
    ({"lr": 0.02, "betas": (0.8, 0.99), "weight_decay": 0.05, "amsgrad": True, "maximize": True},
     None),
    ({"lr": 0.01}, [([0, 2], {"lr": 0.05, "betas": (0.5, 0.9)}), ([1], {"amsgrad": True})]),
]


def run_against_torch(ours_cls, torch_cls, options, spec, dtype, steps=STEPS):
    ours, theirs = make_params(dtype)
    opt = ours_cls(groups_of(ours, spec), **options)
    topt = torch_cls(groups_of(theirs, spec), foreach=False, **options)
    for step in range(steps):
        grads = gradients(dtype, step)
        set_grads(ours, grads, False)
        set_grads(theirs, grads, True)
        opt.step()
        topt.step()
        assert_params_match(ours, theirs, dtype, step)
    return opt, topt


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options, spec", SGD_CASES)
def test_sgd_matches_torch(options, spec, dtype):
    run_against_torch(SGD, torch.optim.SGD, options, spec, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options, spec", ADAM_CASES)
@pytest.mark.parametrize("ours_cls, torch_cls", [(Adam, torch.optim.Adam),
                                                 (AdamW, torch.optim.AdamW)])
def test_adam_matches_torch(ours_cls, torch_cls, options, spec, dtype):
    opt, topt = run_against_torch(ours_cls, torch_cls, options, spec, dtype)
    # The buffers match too, and stay in the parameter's dtype.
    ours, theirs = opt.state_dict()["state"], topt.state_dict()["state"]
    assert sorted(ours) == sorted(theirs)
    for index, entries in ours.items():
        assert int(theirs[index]["step"]) == entries["step"]
        for name, value in entries.items():
            if name != "step":
                assert_close(value, theirs[index][name].numpy(), dtype, f"{index} {name}")


def test_defaults_are_torchs():
    ours, theirs = make_params(np.float32)
    for ours_cls, torch_cls in [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam),
                                (AdamW, torch.optim.AdamW)]:
        defaults = torch_cls(theirs).defaults
        for key, value in ours_cls(ours).defaults.items():
            assert defaults[key] == value, (ours_cls.__name__, key)


def test_skipped_parameter_keeps_value_and_gets_no_state():
    ours, _ = make_params(np.float32)
    before = ours[1].data.copy()
    for opt in (SGD(ours, lr=0.1, momentum=0.9), Adam(ours)):
        set_grads(ours, [np.ones(s, np.float32) if i != 1 else None
                         for i, s in enumerate(SHAPES)], False)
        opt.step()
        np.testing.assert_array_equal(ours[1].data, before)
        assert ours[1] not in opt.state and ours[0] in opt.state


def test_zero_grad_and_closure():
    ours, _ = make_params(np.float32)
    opt = SGD(ours, lr=0.1)
    set_grads(ours, [np.ones(s, np.float32) for s in SHAPES], False)
    grad = ours[0].grad
    opt.zero_grad(set_to_none=False)
    assert ours[0].grad is grad and not grad.any()
    opt.zero_grad()
    assert all(p.grad is None for p in ours)
    assert opt.step(closure=lambda: 42.0) == 42.0


def test_bad_gradient_shape_raises_before_any_update():
    ours, _ = make_params(np.float32)
    before = [p.data.copy() for p in ours]
    opt = SGD(ours, lr=0.1)
    set_grads(ours, [np.ones(s, np.float32) for s in SHAPES], False)
    ours[2].grad = np.ones((3,), np.float32)
    with pytest.raises(ValueError, match="gradient of shape"):
        opt.step()
    for p, b in zip(ours, before):
        np.testing.assert_array_equal(p.data, b)


# -- learning-rate schedules ---------------------------------------------------------------
SCHEDULER_CASES = [
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 1, "gamma": 0.7}),
    ("StepLR", {"step_size": 4, "gamma": 0.3}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),  # 30 steps: past T_max and back
    ("CosineAnnealingLR", {"T_max": 7}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 30}),
    ("OneCycleLR", {"max_lr": [0.5, 0.2], "epochs": 6, "steps_per_epoch": 5,
                    "anneal_strategy": "linear"}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 30, "three_phase": True, "pct_start": 0.25}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 30, "cycle_momentum": False,
                    "div_factor": 10.0, "final_div_factor": 100.0}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 30, "base_momentum": [0.8, 0.7],
                    "max_momentum": 0.9}),
]


def momenta(optimizer):
    return [group["betas"][0] if "betas" in group else group["momentum"]
            for group in optimizer.param_groups]


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name, options", SCHEDULER_CASES)
def test_scheduler_matches_torch_exactly(name, options, optimizer):
    ours, theirs = make_params(np.float32)
    spec = [([0, 2], {"lr": 0.1}), ([1], {"lr": 0.03})]
    extra = {"momentum": 0.9} if optimizer == "SGD" else {}
    opt = globals()[optimizer](groups_of(ours, spec), **extra)
    topt = getattr(torch.optim, optimizer)(groups_of(theirs, spec), foreach=False, **extra)
    sched = getattr(lr_scheduler, name)(opt, **options)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **options)
    for step in range(30):
        assert sched.get_last_lr() == tsched.get_last_lr(), f"step {step}"
        assert momenta(opt) == momenta(topt), f"step {step}"
        grads = gradients(np.float32, step)
        set_grads(ours, grads, False)
        set_grads(theirs, grads, True)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert_params_match(ours, theirs, np.float32, step)
    assert sched.get_last_lr() == tsched.get_last_lr()


def test_one_cycle_refuses_to_step_past_total_steps():
    ours, _ = make_params(np.float32)
    sched = lr_scheduler.OneCycleLR(SGD(ours), max_lr=0.1, total_steps=3)
    for _ in range(3):
        sched.step()
    last = sched.state_dict()
    with pytest.raises(ValueError, match="total steps"):
        sched.step()
    assert sched.state_dict() == last


def test_one_cycle_zero_length_warmup_reaches_max_lr():
    # pct_start * total_steps == 1 makes the first phase a single point; torch divides by zero.
    ours, _ = make_params(np.float32)
    sched = lr_scheduler.OneCycleLR(SGD(ours), max_lr=0.1, total_steps=10, pct_start=0.1)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(9):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == 0.1 and all(math.isfinite(lr) for lr in lrs) and lrs[-1] < 1e-5


# -- checkpoints ---------------------------------------------------------------------------
RESUME_CASES = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01, "amsgrad": True}),
    (AdamW, {"lr": 0.01, "betas": (0.85, 0.99)}),
]


def save_and_load(optimizer_state, scheduler_state, directory):
    """Through a safetensors file and JSON text, as a checkpoint writer would store them."""
    tensors, metadata = flatten_state_dict(optimizer_state)
    path = directory / "optimizer.safetensors"
    save_file(tensors, str(path), metadata={"optimizer": json.dumps(metadata),
                                            "scheduler": json.dumps(scheduler_state)})
    with open(path, "rb") as f:  # the header holds the metadata: 8-byte length, then JSON
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]
    return (unflatten_state_dict(load_file(str(path)), json.loads(header["optimizer"])),
            json.loads(header["scheduler"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, options", RESUME_CASES)
def test_resume_mid_run_is_identical_to_uninterrupted_run(cls, options, dtype, tmp_path):
    def build(params):
        opt = cls(groups_of(params, TWO_GROUPS), **options)
        return opt, lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.05], total_steps=STEPS)

    def train(opt, sched, params, steps):
        for step in steps:
            set_grads(params, gradients(dtype, step), False)
            opt.step()
            sched.step()

    straight, _ = make_params(dtype)
    opt, sched = build(straight)
    train(opt, sched, straight, range(STEPS))

    first, _ = make_params(dtype)
    opt, sched = build(first)
    train(opt, sched, first, range(5))
    saved, saved_sched = opt.state_dict(), sched.state_dict()
    weights = [p.data.copy() for p in first]  # the model's own checkpoint
    train(opt, sched, first, range(5, 7))  # later steps must not change what was saved
    loaded, loaded_sched = save_and_load(saved, saved_sched, tmp_path)

    resumed = [Parameter(w) for w in weights]
    opt, sched = build(resumed)
    opt.load_state_dict(loaded)
    sched.load_state_dict(loaded_sched)
    train(opt, sched, resumed, range(5, STEPS))
    for p, q in zip(resumed, straight):
        np.testing.assert_array_equal(p.data, q.data)
        assert p.data.dtype == dtype


def test_state_dict_layout_matches_torch_and_flattens_losslessly():
    opt, topt = run_against_torch(Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True},
                                  TWO_GROUPS, np.float32, steps=3)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"]) == [0, 1, 2]
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    for group, tgroup in zip(sd["param_groups"], tsd["param_groups"]):
        assert set(group) <= set(tgroup)
        assert all(group[k] == tgroup[k] for k in group)
    for index in sd["state"]:
        assert set(sd["state"][index]) == set(tsd["state"][index])

    tensors, metadata = flatten_state_dict(sd)
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    back = unflatten_state_dict(tensors, json.loads(json.dumps(metadata)))
    assert back["param_groups"] == sd["param_groups"]
    assert back["state"].keys() == sd["state"].keys()
    for index, entries in sd["state"].items():
        assert back["state"][index].keys() == entries.keys()
        for name, value in entries.items():
            np.testing.assert_array_equal(back["state"][index][name], value)
            assert type(back["state"][index][name]) is type(value)


def test_unflatten_rejects_foreign_input():
    tensors, metadata = flatten_state_dict(SGD(make_params(np.float32)[0], momentum=0.9)
                                           .state_dict())
    with pytest.raises(ValueError, match="format"):
        unflatten_state_dict(tensors, {**metadata, "format": "something else"})
    with pytest.raises(ValueError, match="unexpected entry"):
        unflatten_state_dict({"state.7.momentum_buffer": np.zeros(3)}, metadata)


def test_load_state_dict_checks_before_changing_anything():
    ours, _ = make_params(np.float32)
    opt = SGD(groups_of(ours, TWO_GROUPS), lr=0.1, momentum=0.9)
    set_grads(ours, gradients(np.float32, 0), False)
    opt.step()
    good = opt.state_dict()
    before = opt.state_dict()
    bad_cases = [
        {**good, "param_groups": good["param_groups"][:1]},
        {**good, "param_groups": [good["param_groups"][0], {**good["param_groups"][1],
                                                            "params": [1, 2]}]},
        {**good, "state": {**good["state"], 0: {"momentum_buffer": np.zeros((2, 2))}}},
        {**good, "state": {**good["state"], 9: {"momentum_buffer": np.zeros(5)}}},
        {**good, "param_groups": [{**good["param_groups"][0], "lr": -1.0},
                                  good["param_groups"][1]]},
    ]
    for bad in bad_cases:
        with pytest.raises(ValueError):
            opt.load_state_dict(bad)
        after = opt.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for index, entries in before["state"].items():
            np.testing.assert_array_equal(after["state"][index]["momentum_buffer"],
                                          entries["momentum_buffer"])


# -- argument checking ---------------------------------------------------------------------
def _params():
    return make_params(np.float32)[0]


BAD_ARGUMENTS = [
    (lambda: SGD(_params(), lr=-0.1), ValueError, "lr"),
    (lambda: SGD(_params(), lr=float("nan")), ValueError, "lr"),
    (lambda: SGD(_params(), lr="0.1"), TypeError, "lr"),
    (lambda: SGD(_params(), momentum=-0.5), ValueError, "momentum"),
    (lambda: SGD(_params(), weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda: SGD(_params(), nesterov=True), ValueError, "Nesterov"),
    (lambda: SGD(_params(), momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda: SGD([{"params": _params(), "lr": -1.0}], lr=0.1), ValueError, "lr"),
    (lambda: Adam(_params(), lr=-1e-3), ValueError, "lr"),
    (lambda: Adam(_params(), eps=-1e-8), ValueError, "eps"),
    (lambda: Adam(_params(), betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (lambda: Adam(_params(), betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
    (lambda: Adam(_params(), betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (lambda: Adam(_params(), betas=0.9), TypeError, "betas"),
    (lambda: AdamW(_params(), weight_decay=-0.01), ValueError, "weight_decay"),
    (lambda: Adam(_params(), amsgrad="yes"), TypeError, "amsgrad"),
    (lambda: SGD([]), ValueError, "empty parameter list"),
    (lambda: SGD(_params()[0]), TypeError, "iterable"),
    (lambda: SGD([{"params": set(_params())}]), TypeError, "set"),
    (lambda: SGD([np.zeros(3)]), TypeError, "Tensors"),
    (lambda: SGD([{"params": (p := _params())[:2]}, {"params": p[1:]}]), ValueError,
     "more than one"),
    (lambda: SGD([(p := _params()[0]), p]), ValueError, "more than once"),
    (lambda: lr_scheduler.StepLR(SGD(_params()), step_size=0), ValueError, "step_size"),
    (lambda: lr_scheduler.StepLR(object(), step_size=1), TypeError, "optimizer"),
    (lambda: lr_scheduler.CosineAnnealingLR(SGD(_params()), T_max=0), ValueError, "T_max"),
    (lambda: lr_scheduler.OneCycleLR(SGD(_params()), 0.1), ValueError, "total_steps"),
    (lambda: lr_scheduler.OneCycleLR(SGD(_params()), 0.1, total_steps=0), ValueError,
     "total_steps"),
    (lambda: lr_scheduler.OneCycleLR(SGD(_params()), 0.1, 10, pct_start=1.5), ValueError,
     "pct_start"),
    (lambda: lr_scheduler.OneCycleLR(SGD(_params()), 0.1, 10, anneal_strategy="exp"), ValueError,
     "anneal_strategy"),
    (lambda: lr_scheduler.OneCycleLR(SGD(_params()), [0.1, 0.2], 10), ValueError, "max_lr"),
    (lambda: lr_scheduler.OneCycleLR(Optimizer(_params(), {"lr": 0.1}), 0.1, 10), ValueError,
     "momentum"),
]


@pytest.mark.parametrize("make, error, match", BAD_ARGUMENTS)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_scheduler_state_dict_raises():
    sched = lr_scheduler.StepLR(SGD(_params(), lr=0.1), step_size=2)
    good = sched.state_dict()
    json.dumps(good)
    with pytest.raises(ValueError, match="keys"):
        sched.load_state_dict({**good, "extra": 1})
    with pytest.raises(ValueError, match="base_lrs"):
        sched.load_state_dict({**good, "base_lrs": [0.1, 0.2]})
    assert sched.state_dict() == good
