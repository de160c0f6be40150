"""The PyTorch (eager) side of `benchmarks.autoencoder`: the behaviour autoencoder and
its training step written in plain PyTorch, timed on data handed over in a .npz file.

  .venv-torch/bin/python benchmarks/autoencoder_torch.py DATA.npz

Imports only torch and NumPy (it runs in its own Python 3.11 environment, see
`benchmarks.autoencoder`).  The .npz holds `meta` (a JSON string: policy layer sizes,
activations, action bounds, optimiser and timing settings), `thetas` (K, B, P) and
`states` (K, M, O) (the K batches that both frameworks cycle through), `scale` (P,)
and the initial network weights `encoder_kernel_<i>` (fan_in, fan_out, Flax's layout)
and `encoder_bias_<i>`, likewise for the decoder.  Prints one JSON line on stdout: the
losses of the first `check_steps` steps from those weights, then the wall time of each
timed loop of `steps` steps.

The model mirrors `lsc.autoencoder`: encoder = Linear layers with ELU on theta / s,
decoder = Linear layers with ELU whose output is multiplied by s; the policy reads its
layers from the flat vector theta (per layer the kernel, fan_in x fan_out row-major,
then the bias), tanh hidden layers, a tanh output mapped onto [low, high].  The loss is
the mean over policies and states of the squared action difference summed over action
dimensions; torch.optim.Adam, float32 throughout.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

HIDDEN_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
AE_ACTIVATIONS = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes, activation: str) -> nn.Sequential:
  """Linear layers through `sizes` with `activation` between them (none after the last)."""
  layers = []
  for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
    if i:
      layers.append(AE_ACTIVATIONS[activation]())
    layers.append(nn.Linear(fan_in, fan_out))
  return nn.Sequential(*layers)


class BehaviourAutoencoder(nn.Module):
  def __init__(self, scale: torch.Tensor, latent_dim: int, encoder_widths, decoder_widths, activation: str):
    super().__init__()
    num_params = scale.shape[0]
    self.encoder = mlp([num_params, *encoder_widths, latent_dim], activation)
    self.decoder = mlp([latent_dim, *decoder_widths, num_params], activation)
    self.register_buffer("scale", scale)

  def forward(self, thetas: torch.Tensor) -> torch.Tensor:
    return self.scale * self.decoder(self.encoder(thetas / self.scale))

  def load_flax(self, data) -> None:
    """Copies Flax Dense weights (kernel (in, out), bias) into the Linear layers."""
    with torch.no_grad():
      for name in ("encoder", "decoder"):
        linears = [m for m in getattr(self, name) if isinstance(m, nn.Linear)]
        for i, linear in enumerate(linears):
          kernel = torch.from_numpy(np.ascontiguousarray(data[f"{name}_kernel_{i}"]))
          linear.weight.copy_(kernel.T)
          linear.bias.copy_(torch.from_numpy(data[f"{name}_bias_{i}"]))


def policy_actions(thetas: torch.Tensor, states: torch.Tensor, layer_sizes, activation: str,
                   low: float, high: float) -> torch.Tensor:
  """Actions (B, M, A) of the B flat-vector policies thetas (B, P) on states (M, O)."""
  batch = thetas.shape[0]
  hidden_act = HIDDEN_ACTIVATIONS[activation]
  x, offset = states, 0
  n_layers = len(layer_sizes) - 1
  for i, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
    kernel = thetas[:, offset:offset + fan_in * fan_out].reshape(batch, fan_in, fan_out)
    offset += fan_in * fan_out
    bias = thetas[:, offset:offset + fan_out]
    offset += fan_out
    x = torch.matmul(x, kernel) + bias[:, None, :]  # (M, in) @ (B, in, out) broadcasts to (B, M, out)
    x = hidden_act(x) if i < n_layers - 1 else torch.tanh(x)
  return low + 0.5 * (x + 1.0) * (high - low)


def main(argv) -> int:
  data = np.load(argv[0])
  meta = json.loads(str(data["meta"]))
  torch.set_num_threads(meta.get("threads") or os.cpu_count())
  torch.manual_seed(0)
  thetas = torch.from_numpy(data["thetas"])
  states = torch.from_numpy(data["states"])
  model = BehaviourAutoencoder(torch.from_numpy(data["scale"]), meta["latent_dim"], meta["encoder_widths"],
                               meta["decoder_widths"], meta["activation"])
  model.load_flax(data)
  adam = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[meta.get("adam", "default")]
  optimizer = torch.optim.Adam(model.parameters(), lr=meta["lr"], **adam)
  policy = (meta["layer_sizes"], meta["policy_activation"], meta["action_low"], meta["action_high"])

  def step(i: int) -> torch.Tensor:
    batch, obs = thetas[i % len(thetas)], states[i % len(states)]
    optimizer.zero_grad(set_to_none=True)
    diff = policy_actions(batch, obs, *policy) - policy_actions(model(batch), obs, *policy)
    loss = diff.square().sum(-1).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()

  done = 0
  losses = []
  for _ in range(meta["check_steps"]):
    losses.append(float(step(done)))
    done += 1
  for _ in range(meta["warmup"]):
    step(done)
    done += 1
  times = []
  for _ in range(meta["repeats"]):
    start = time.perf_counter()
    for _ in range(meta["steps"]):
      loss = step(done)
      done += 1
    float(loss)
    times.append(time.perf_counter() - start)
  rates = [meta["steps"] / t for t in times]
  print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "adam": meta.get("adam", "default"),
                    "losses": losses, "loop_s": times, "steps_per_s_best": max(rates),
                    "steps_per_s_median": statistics.median(rates), "final_loss": float(loss)}))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
