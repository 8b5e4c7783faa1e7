"""Training forward pass for transformers' MambaForCausalLM weights.

transformers 5.23's CPU path runs the selective scan as a Python loop with
autograd recording every step, which is too slow and memory-hungry to train
with. This module computes the same function from the same parameters:

    per layer: RMSNorm -> in_proj -> (x, z); x -> causal depthwise conv1d -> SiLU
    -> x_proj -> (dt, B, C); dt -> dt_proj -> softplus; A = -exp(A_log);
    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t; y_t = C_t . h_t + D * x_t;
    y = y * SiLU(z) -> out_proj -> residual add
    then the final RMSNorm and the tied lm_head.

The recurrence runs in `SelectiveScan`, an autograd function whose forward and
backward passes each make one fused multiply-add per time step over
(batch, d_inner, d_state) and record no graph. The loops run on one thread:
each step is a small operation, and on the 2-core training machine
synchronising two threads per step made them about 10 times slower.
"""

import contextlib

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SelectiveScan(torch.autograd.Function):
    """Selective scan over time-major inputs, with hand-written backward pass.

    Inputs: dt and dtx = dt * x of shape (seq, batch, d_inner), A of shape
    (d_inner, d_state), B and C of shape (seq, batch, d_state). Returns y of shape
    (seq, batch, d_inner) with
        h_t = exp(dt_t * A) * h_{t-1} + dtx_t * B_t,  h_{-1} = 0,  y_t = h_t . C_t.
    The per-step tensors (batch, d_inner, d_state) stay in cache, whereas a
    vectorised version that builds whole (seq, batch, d_inner, d_state) tensors
    was memory-bound. Only the states h_t are stored for the backward pass.
    """

    @staticmethod
    def forward(ctx, dt, A, dtx, B, C):
        seq_len, batch, d_inner = dt.shape
        d_state = A.shape[1]
        states = dt.new_empty(seq_len, batch, d_inner, d_state)
        y = dt.new_empty(seq_len, batch, d_inner)
        with single_thread():
            previous = dt.new_zeros(batch, d_inner, d_state)
            for t in range(seq_len):
                decay = torch.exp(dt[t].unsqueeze(-1) * A)
                state = states[t]
                torch.mul(dtx[t].unsqueeze(-1), B[t].unsqueeze(1), out=state)
                state.addcmul_(decay, previous)
                torch.bmm(state, C[t].unsqueeze(-1), out=y[t].unsqueeze(-1))
                previous = state
        ctx.save_for_backward(dt, A, dtx, B, C, states)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        dt, A, dtx, B, C, states = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        seq_len, batch, d_inner = dt.shape
        grad_dt = torch.zeros_like(dt)
        grad_dtx = torch.empty_like(dtx)
        grad_B = torch.empty_like(B)
        grad_C = torch.empty_like(C)
        grad_A_per_batch = torch.zeros_like(states[0])
        with single_thread():
            # grad_h is dLoss/dh_t, accumulated from y_t and from h_{t+1}.
            grad_h = torch.zeros_like(states[0])
            for t in range(seq_len - 1, -1, -1):
                state = states[t]
                torch.bmm(grad_y[t].unsqueeze(1), state, out=grad_C[t].unsqueeze(1))
                grad_h.addcmul_(grad_y[t].unsqueeze(-1), C[t].unsqueeze(1))
                torch.bmm(grad_h, B[t].unsqueeze(-1), out=grad_dtx[t].unsqueeze(-1))
                torch.bmm(dtx[t].unsqueeze(1), grad_h, out=grad_B[t].unsqueeze(1))
                decay = torch.exp(dt[t].unsqueeze(-1) * A)
                if t > 0:
                    # dLoss/d(dt_t * A), through decay = exp(dt_t * A).
                    grad_exponent = grad_h * states[t - 1] * decay
                    grad_dt[t] = (grad_exponent * A).sum(-1)
                    grad_A_per_batch.addcmul_(grad_exponent, dt[t].unsqueeze(-1))
                grad_h.mul_(decay)
        return grad_dt, grad_A_per_batch.sum(0), grad_dtx, grad_B, grad_C


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def mixer_forward(mixer, x: torch.Tensor) -> torch.Tensor:
    """Apply one MambaMixer to x of shape (batch, seq, d_model)."""
    batch, seq_len, _ = x.shape
    d_inner = mixer.intermediate_size
    d_state = mixer.ssm_state_size

    projected = F.linear(x, mixer.in_proj.weight, mixer.in_proj.bias)
    hidden, gate = projected.chunk(2, dim=-1)

    conv = F.conv1d(
        hidden.transpose(1, 2),
        mixer.conv1d.weight,
        mixer.conv1d.bias,
        padding=mixer.conv_kernel_size - 1,
        groups=d_inner,
    )
    hidden = F.silu(conv[..., :seq_len]).transpose(1, 2)  # (batch, seq, d_inner)

    time_step, B, C = torch.split(
        F.linear(hidden, mixer.x_proj.weight),
        [mixer.time_step_rank, d_state, d_state],
        dim=-1,
    )
    dt = F.softplus(F.linear(time_step, mixer.dt_proj.weight, mixer.dt_proj.bias))
    A = -torch.exp(mixer.A_log.float())  # (d_inner, d_state)

    # The scan runs time-major, (seq, batch, ...), so each step is contiguous.
    dt = dt.transpose(0, 1).contiguous()
    dtx = dt * hidden.transpose(0, 1)
    y = SelectiveScan.apply(
        dt, A, dtx, B.transpose(0, 1).contiguous(), C.transpose(0, 1).contiguous()
    ).transpose(0, 1)

    y = y + hidden * mixer.D
    y = y * F.silu(gate)
    return F.linear(y, mixer.out_proj.weight, mixer.out_proj.bias)


def causal_lm_forward(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Return logits (batch, seq, vocab) of a MambaForCausalLM for input_ids (batch, seq)."""
    backbone = model.backbone
    eps = model.config.layer_norm_epsilon
    hidden = backbone.embeddings(input_ids)
    for layer in backbone.layers:
        hidden = hidden + mixer_forward(layer.mixer, rms_norm(hidden, layer.norm.weight, eps))
    hidden = rms_norm(hidden, backbone.norm_f.weight, eps)
    return F.linear(hidden, model.lm_head.weight)
