namespace Sd.Engine.Pipelines;

/// <summary>
/// Inpainting: what the picture's latents hold under the mask when a run starts from the noised picture
/// (<see cref="GenerateRequest.MaskedLatents"/>; A1111's Masked content "latent noise" and "latent nothing").
/// </summary>
public enum MaskedLatents
{
    /// <summary>The picture's own latents (diffusers' inpainting; A1111's "original" and "fill").</summary>
    Picture,

    /// <summary>
    /// The draw the run starts from, so the masked area starts from that draw alone, at a larger scale (A1111's "latent
    /// noise", where the fill is the seed's own draw: the same one unless a variation seed or seed resize changes the start).
    /// </summary>
    Noise,

    /// <summary>Zeros, so the masked area starts from the noise scaled to the first step alone (A1111's "latent nothing").</summary>
    Zeros,
}
