namespace Sd.Engine.UNet;

/// <summary>How a ControlNet weights its residuals from the first skip connection to the mid block.</summary>
public enum ResidualWeighting
{
    /// <summary>All at the conditioning scale.</summary>
    Uniform,

    /// <summary>
    /// diffusers' guess mode: from 0.1 at the first skip up to 1 at the mid block, torch.logspace(-1, 0, skips + 1).
    /// A globally pooled ControlNet keeps the uniform weights, as in diffusers.
    /// </summary>
    GuessMode,

    /// <summary>
    /// A1111 ControlNet extension's soft injection ("My prompt is more important", "ControlNet is more important"):
    /// residual i weighted 0.825^(12 - i), from 0.0994 at SD's first skip up to 1 at its mid block (the thirteenth).
    /// </summary>
    Soft,
}
