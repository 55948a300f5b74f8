//! The layers of the bidirectional transformer (Qwen2 / LLaMA layout, no causal mask).
//!
//! Every layer is a pair: `XConfig` (hyper-parameters, `init(&device)` for a random
//! initialisation) and `X` (the burn module). Weight matrices are stored in the Hugging Face
//! (PyTorch) layout `[out_features, in_features]`, so that safetensors checkpoints load without
//! any transposition.

use burn::module::{Initializer, Module, Param};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::ModelConfig;

/// Standard deviation of the normal initialisation of weight matrices (as in Qwen2).
pub const INIT_STD: f64 = 0.02;

fn normal(shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Initializer::Normal {
        mean: 0.0,
        std: INIT_STD,
    }
    .init(shape, device)
}

/// Wraps a tensor as a fresh trainable parameter (gradients are tracked on an autodiff device).
pub(crate) fn param<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t)
}

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone)]
pub struct LinearConfig {
    /// Input width.
    pub d_input: usize,
    /// Output width.
    pub d_output: usize,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl LinearConfig {
    /// Creates a layer with normal(0, 0.02) weights and a zero bias.
    pub fn init(&self, device: &Device) -> Linear {
        Linear {
            weight: normal([self.d_output, self.d_input], device),
            bias: self
                .bias
                .then(|| param(Tensor::zeros([self.d_output], device))),
        }
    }
}

/// A linear layer with its weight in the PyTorch layout.
#[derive(Module, Debug)]
pub struct Linear {
    /// Weight `[d_output, d_input]`.
    pub weight: Param<Tensor<2>>,
    /// Optional bias `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// Applies `x · Wᵀ + b`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_input]`
    /// - output: `[batch, seq, d_output]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let y = matmul_transposed(x, self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<D>(),
            None => y,
        }
    }
}

/// `x · wᵀ` for `x: [..., k]` and `w: [n, k]` (PyTorch's weight layout), as one 2-D matmul
/// over the flattened leading dimensions: `wᵀ` stays a strided view, which the backends'
/// matmuls read in place. (Broadcasting `wᵀ` to rank `D` with `unsqueeze` instead made
/// burn-flex copy every weight matrix, the LM head's 8 192 × d included, on every forward
/// pass: 42 % of `ward bench generate`'s time went to that copy.)
pub fn matmul_transposed<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    let dims = x.dims();
    let k = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let n = w.dims()[0];
    let y = x.reshape([rows, k]).matmul(w.transpose());
    let mut out = dims;
    out[D - 1] = n;
    y.reshape(out)
}

/// Configuration of an [`RmsNorm`] layer.
#[derive(Debug, Clone)]
pub struct RmsNormConfig {
    /// Width of the normalised dimension.
    pub d_model: usize,
    /// Epsilon added to the mean square.
    pub eps: f64,
}

impl RmsNormConfig {
    /// Creates a norm with unit gain.
    pub fn init(&self, device: &Device) -> RmsNorm {
        RmsNorm {
            weight: param(Tensor::ones([self.d_model], device)),
            eps: self.eps,
        }
    }
}

/// Root-mean-square layer norm with a learned gain.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Gain `[d_model]`.
    pub weight: Param<Tensor<1>>,
    /// Epsilon added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// Normalises the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., d_model]`
    /// - output: same as `x`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        (x / rms) * self.weight.val().unsqueeze::<D>()
    }
}

/// Rotary position tables (`cos`, `sin`) in the Hugging Face "rotate half" layout.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `[seq, head_dim]`
    pub cos: Tensor<2>,
    /// `[seq, head_dim]`
    pub sin: Tensor<2>,
}

impl Rope {
    /// Computes the tables for positions `0..seq`.
    pub fn new(seq: usize, head_dim: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
            .collect();
        let mut cos = Vec::with_capacity(seq * head_dim);
        let mut sin = Vec::with_capacity(seq * head_dim);
        for p in 0..seq {
            for _ in 0..2 {
                for f in &inv {
                    // Same arithmetic as transformers: the angle is computed in f32.
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, [seq, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [seq, head_dim]), device),
        }
    }

    /// Rotates queries or keys.
    ///
    /// # Shapes
    /// - `x`: `[batch, heads, seq, head_dim]`
    /// - output: same as `x`
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, _, hd] = x.dims();
        let half = hd / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        let cos = self.cos.clone().unsqueeze::<4>();
        let sin = self.sin.clone().unsqueeze::<4>();
        x * cos + rotated * sin
    }
}

/// Configuration of an [`Attention`] layer.
#[derive(Debug, Clone)]
pub struct AttentionConfig {
    /// Residual width.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Bias on the q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
}

impl AttentionConfig {
    /// Creates the layer with random weights.
    pub fn init(&self, device: &Device) -> Attention {
        let q = self.n_heads * self.head_dim;
        let kv = self.n_kv_heads * self.head_dim;
        let lin = |i, o, bias| {
            LinearConfig {
                d_input: i,
                d_output: o,
                bias,
            }
            .init(device)
        };
        Attention {
            q_proj: lin(self.d_model, q, self.qkv_bias),
            k_proj: lin(self.d_model, kv, self.qkv_bias),
            v_proj: lin(self.d_model, kv, self.qkv_bias),
            o_proj: lin(q, self.d_model, self.o_bias),
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        }
    }
}

/// Bidirectional multi-head attention with grouped key/value heads and RoPE.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub o_proj: Linear,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
}

impl Attention {
    /// Full (non-causal) attention over the whole sequence.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, rope: &Rope) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
        let q = rope.apply(heads(self.q_proj.forward(x.clone()), h));
        let k = rope.apply(heads(self.k_proj.forward(x.clone()), kvh));
        let v = heads(self.v_proj.forward(x), kvh);
        let (k, v) = if kvh == h {
            (k, v)
        } else {
            let rep = h / kvh;
            let expand = |t: Tensor<4>| {
                t.unsqueeze_dim::<5>(2)
                    .expand([b, kvh, rep, s, hd])
                    .reshape([b, h, s, hd])
            };
            (expand(k), expand(v))
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = q.matmul(k.swap_dims(2, 3)) * scale;
        let probs = softmax(scores, 3);
        let out = probs.matmul(v).swap_dims(1, 2).reshape([b, s, h * hd]);
        self.o_proj.forward(out)
    }
}

/// Configuration of an [`Mlp`] layer.
#[derive(Debug, Clone)]
pub struct MlpConfig {
    /// Residual width.
    pub d_model: usize,
    /// Hidden width.
    pub d_ff: usize,
}

impl MlpConfig {
    /// Creates the layer with random weights.
    pub fn init(&self, device: &Device) -> Mlp {
        let lin = |i, o| {
            LinearConfig {
                d_input: i,
                d_output: o,
                bias: false,
            }
            .init(device)
        };
        Mlp {
            gate_proj: lin(self.d_model, self.d_ff),
            up_proj: lin(self.d_model, self.d_ff),
            down_proj: lin(self.d_ff, self.d_model),
        }
    }
}

/// SwiGLU feed-forward layer.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl Mlp {
    /// `down(silu(gate(x)) * up(x))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let g = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

/// One transformer block: pre-norm attention and pre-norm MLP, each with a residual.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// MLP.
    pub mlp: Mlp,
}

impl Block {
    /// Creates a block with random weights from a model config.
    pub fn init(cfg: &ModelConfig, device: &Device) -> Self {
        let norm = RmsNormConfig {
            d_model: cfg.hidden_size,
            eps: cfg.rms_norm_eps,
        };
        Block {
            input_layernorm: norm.init(device),
            self_attn: AttentionConfig {
                d_model: cfg.hidden_size,
                n_heads: cfg.num_attention_heads,
                n_kv_heads: cfg.kv_heads(),
                head_dim: cfg.head_dim(),
                qkv_bias: cfg.qkv_bias(),
                o_bias: cfg.o_bias(),
            }
            .init(device),
            post_attention_layernorm: norm.init(device),
            mlp: MlpConfig {
                d_model: cfg.hidden_size,
                d_ff: cfg.intermediate_size,
            }
            .init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, rope: &Rope) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rope);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// The whole transformer: embedding, blocks, final norm and LM head.
#[derive(Module, Debug)]
pub struct Transformer {
    /// Token embedding `[vocab, d_model]` (`model.embed_tokens.weight`).
    pub embed_tokens: Param<Tensor<2>>,
    /// The blocks (`model.layers.N.*`).
    pub layers: Vec<Block>,
    /// Final norm (`model.norm.weight`).
    pub norm: RmsNorm,
    /// Untied LM head `[vocab, d_model]` (`lm_head.weight`); `None` when tied to the embedding.
    pub lm_head: Option<Param<Tensor<2>>>,
    /// Head width (for RoPE).
    pub head_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
}

impl Transformer {
    /// Creates a model with random weights (normal(0, 0.02) matrices, unit norms, zero biases).
    pub fn init(cfg: &ModelConfig, device: &Device) -> Self {
        Transformer {
            embed_tokens: normal([cfg.vocab_size, cfg.hidden_size], device),
            layers: (0..cfg.num_hidden_layers)
                .map(|_| Block::init(cfg, device))
                .collect(),
            norm: RmsNormConfig {
                d_model: cfg.hidden_size,
                eps: cfg.rms_norm_eps,
            }
            .init(device),
            lm_head: (!cfg.tie_word_embeddings)
                .then(|| normal([cfg.vocab_size, cfg.hidden_size], device)),
            head_dim: cfg.head_dim(),
            rope_theta: cfg.rope_theta,
        }
    }

    /// The final hidden states, after the last norm.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - output: `[batch, seq, d_model]`
    pub fn hidden(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, s] = ids.dims();
        let device = ids.device();
        let emb = self.embed_tokens.val();
        let [_, d] = emb.dims();
        let mut x = emb.select(0, ids.reshape([b * s])).reshape([b, s, d]);
        let rope = Rope::new(s, self.head_dim, self.rope_theta, &device);
        for layer in &self.layers {
            x = layer.forward(x, &rope);
        }
        self.norm.forward(x)
    }

    /// Applies the LM head to hidden states.
    ///
    /// # Shapes
    /// - `h`: `[..., d_model]`
    /// - output: `[..., vocab]`
    pub fn head<const D: usize>(&self, h: Tensor<D>) -> Tensor<D> {
        let w = match &self.lm_head {
            Some(w) => w.val(),
            None => self.embed_tokens.val(),
        };
        matmul_transposed(h, w)
    }

    /// Logits for every position.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.head(self.hidden(ids))
    }
}
