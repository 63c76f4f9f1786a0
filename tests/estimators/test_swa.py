"""The cosine schedule with stochastic weight averaging of DeepREMAP."""

import copy
import logging

import pytest
import torch

from stellarlatent.estimators._swa import CosineSWA, swa_start_epoch


def _train(schedule, net, optimizer, epochs):
    rates = []
    for epoch in epochs:
        optimizer.zero_grad()
        net(torch.ones(4, 3)).square().sum().backward()
        optimizer.step()
        schedule.step(epoch, net)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def _setup(n_epochs=6, **kwargs):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    params = dict(swa_start=3, swa_lr=0.05) | kwargs
    return net, optimizer, CosineSWA(optimizer, net, n_epochs, **params)


def test_the_rate_anneals_to_swa_lr_then_the_weights_are_averaged():
    net, optimizer, schedule = _setup()
    rates = _train(schedule, net, optimizer, range(6))
    assert rates[2] == pytest.approx(0.05) and rates[:3] == sorted(rates[:3], reverse=True)
    assert rates[3:] == pytest.approx([0.05] * 3)
    assert schedule.n_averaged == 3 and schedule.averaged_module is not None


def test_without_swa_the_cosine_spans_every_epoch_and_nothing_is_averaged():
    net, optimizer, schedule = _setup(swa_start=None)
    rates = _train(schedule, net, optimizer, range(6))
    assert rates[-1] == pytest.approx(0.05) and schedule.n_averaged == 0
    assert schedule.averaged is None and schedule.averaged_module is None
    assert set(schedule.state_dict()) == {"scheduler"}


@pytest.mark.parametrize("stop", [2, 4])
def test_a_restored_state_continues_as_if_uninterrupted(stop):
    net, optimizer, schedule = _setup(restart_period=2)
    full = _train(schedule, net, optimizer, range(6))
    expected = copy.deepcopy(schedule.averaged.state_dict())

    net, optimizer, schedule = _setup(restart_period=2)
    _train(schedule, net, optimizer, range(stop))
    saved = (copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict()),
             copy.deepcopy(schedule.state_dict()))
    assert ("swa_scheduler" in saved[2]) == (stop > 3)
    net, optimizer, schedule = _setup(restart_period=2)
    net.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    schedule.load_state_dict(saved[2])
    assert _train(schedule, net, optimizer, range(stop, 6)) == pytest.approx(full[stop:])
    for key, value in schedule.averaged.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_the_start_epoch(caplog):
    assert swa_start_epoch(0.75, 40) == 30
    assert swa_start_epoch(0.99, 3) == 2
    assert swa_start_epoch(0, 5) == 0
    with caplog.at_level(logging.INFO, logger="stellarlatent"):
        assert swa_start_epoch(5, 5) is None
    assert "swa_start=5 >= 5 epochs" in caplog.text
