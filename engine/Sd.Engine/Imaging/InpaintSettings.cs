namespace Sd.Engine.Imaging;

/// <summary>A rectangle of a picture in pixels: left, top, width, height.</summary>
public readonly record struct PictureRegion(int X, int Y, int Width, int Height);

/// <summary>A1111's "Masked content": what the run starts from under the mask.</summary>
public enum MaskedContent
{
    /// <summary>"original": the picture as it is (A1111's UI default).</summary>
    Original,

    /// <summary>"fill": the masked area painted over with blurs of the colours around it (<see cref="MaskedContentFill"/>).</summary>
    Fill,

    /// <summary>"latent noise": the picture's latents under the mask become the run's start draw (<see cref="Pipelines.MaskedLatents.Noise"/>).</summary>
    LatentNoise,

    /// <summary>"latent nothing": the picture's latents under the mask become zeros (<see cref="Pipelines.MaskedLatents.Zeros"/>).</summary>
    LatentNothing,
}

/// <summary>A1111's inpainting settings that shape the pictures around a run (its img2img Inpaint tab).</summary>
public sealed record InpaintSettings
{
    /// <summary>A1111's largest mask blur and masked-area padding (its sliders' ends).</summary>
    public const int MaxMaskBlur = 64, MaxPadding = 256;

    /// <summary>
    /// "Mask blur": the standard deviation in pixels of the Gaussian blur run across the mask and then down it
    /// (OpenCV's, as A1111 runs it), 0 to <see cref="MaxMaskBlur"/>; 0 leaves the mask's edge hard. A1111's default is 4.
    /// </summary>
    public int MaskBlur { get; init; } = 4;

    /// <summary>
    /// "Inpaint area: Only masked": the run repaints only the masked area's bounding box (grown by
    /// <see cref="Padding"/>, then to the run's aspect ratio) resized to the run's size, and the result is scaled back
    /// into the whole picture. False: "Whole picture".
    /// </summary>
    public bool OnlyMasked { get; init; }

    /// <summary>"Only masked padding, pixels": how far the box reaches past the mask on each side, 0 to <see cref="MaxPadding"/>.</summary>
    public int Padding { get; init; } = 32;

    /// <summary>"Mask mode: Inpaint not masked": the mask inverted once it is read, so the black area is repainted.</summary>
    public bool InvertMask { get; init; }

    /// <summary>"Masked content": <see cref="MaskedContent.Fill"/> paints the masked area of the run's picture over
    /// before the run (the overlay keeps the picture as it was); the latent fills are the request's
    /// (<see cref="A1111Inpaint.MaskedLatents"/>).</summary>
    public MaskedContent MaskedContent { get; init; }
}
