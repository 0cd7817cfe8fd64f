namespace Sd.Kernels.Elementwise;

/// <summary>Pointwise activations the kernels can apply on their way out (fused) or on their own.</summary>
public enum Activation
{
    None,

    /// <summary>x * sigmoid(x) (SiLU / swish): ResNet blocks, GroupNorm+SiLU, the time embedding.</summary>
    Silu,

    /// <summary>0.5 x (1 + erf(x / sqrt 2)): PyTorch's default (exact, not tanh) GELU, in GEGLU feed-forwards.</summary>
    Gelu,

    /// <summary>x * sigmoid(1.702 x): OpenAI CLIP's quick_gelu (SD 1.x text encoder).</summary>
    QuickGelu,
}
