using Sd.Engine.Imaging;
using Sd.Engine.UNet;
using Sd.Loaders.Png;

namespace Sd.Engine.Pipelines;

/// <summary>
/// One ControlNet of a request: the loaded model, the picture that steers it (an edge map, depth map, pose...: the
/// preprocessed picture, as diffusers takes it), how strongly and over which part of the steps.
/// Reference: diffusers StableDiffusionControlNetPipeline (0.27) arguments image, controlnet_conditioning_scale,
/// control_guidance_start, control_guidance_end and guess_mode.
/// </summary>
public sealed record ControlNetUnit(ControlNetModel Model, PngImage Image)
{
    /// <summary>What the residuals are multiplied by (controlnet_conditioning_scale; 0 turns it off).</summary>
    public float Scale { get; init; } = 1f;

    /// <summary>
    /// The fraction of the steps before which the ControlNet is off (control_guidance_start): step i of n runs it
    /// when i / n is at least this and (i + 1) / n at most <see cref="GuidanceEnd"/>.
    /// </summary>
    public float GuidanceStart { get; init; }

    /// <summary>The fraction of the steps after which the ControlNet is off (control_guidance_end).</summary>
    public float GuidanceEnd { get; init; } = 1f;

    /// <summary>
    /// diffusers' guess mode: under classifier-free guidance the ControlNet steers only the conditioned prediction,
    /// its residuals scaled from 0.1 (the first skip) to 1 (the mid block), so it tries to recognise the picture's
    /// content even with an empty prompt. Always on for a globally pooled ControlNet (shuffle), as in diffusers.
    /// </summary>
    public bool GuessMode { get; init; }

    /// <summary>
    /// A1111 ControlNet extension's "Control Mode" (not with <see cref="GuessMode"/>): balanced (the plain residuals),
    /// the prompt more important (residuals weighted 0.825^(12 - i), soft injection), or the ControlNet more
    /// important (those weights, on the conditioned prediction only).
    /// </summary>
    public ControlMode Mode { get; init; }

    /// <summary>
    /// For an inpainting ControlNet (lllyasviel/control_v11p_sd15_inpaint): the area to repaint (light, gray above
    /// 0.5 as Pillow's convert("L") reads it), the picture's size. The picture's pixels there become -1 (diffusers'
    /// make_inpaint_condition), and that condition is resized to each pass by nearest neighbours, as diffusers' control
    /// image processor resizes a tensor (F.interpolate), instead of the Lanczos of a plain picture.
    /// </summary>
    public PngImage? Mask { get; init; }

    /// <summary>
    /// How the picture is brought to each pass's size (Lanczos): just resized, cropped to the pass's aspect ratio, or
    /// fitted inside it with its edges stretched over the rest, as diffusers' image processor's resize_mode default,
    /// crop and fill (A1111's Resize Modes). An inpainting condition (<see cref="Mask"/>) is only ever just resized.
    /// </summary>
    public ResizeMode Resize { get; init; } = ResizeMode.Just;

    /// <summary>Whether step <paramref name="index"/> of <paramref name="count"/> runs it (diffusers' controlnet_keep).</summary>
    internal bool ActiveAt(int index, int count) =>
        !(index / (double)count < GuidanceStart || (index + 1) / (double)count > GuidanceEnd) && Scale != 0;

    /// <summary>
    /// Whether it steers the conditioned rows only: guess mode, the ControlNet more important (A1111's cfg injection),
    /// or a pooled ControlNet, which implies it.
    /// </summary>
    internal bool ConditionedOnly => GuessMode || Mode == ControlMode.ControlNetMoreImportant || Model.Config.GlobalPoolConditions;

    /// <summary>
    /// Whether a hires fix's second pass weights its residuals softly (0.825^(12 - i)) whatever <see cref="Mode"/>: the
    /// A1111 ControlNet extension forces that for its canny and mlsd units, as it "can significantly reduce artifacts"
    /// there (its high_res_fix_forced_soft_injection). Guess mode keeps its own weights.
    /// </summary>
    public bool SoftInHires { get; init; }

    /// <summary>How its residuals are weighted by depth in a first pass, or a hires fix's second (<paramref name="hires"/>).</summary>
    internal ResidualWeighting WeightingIn(bool hires) =>
        GuessMode ? ResidualWeighting.GuessMode
        : Mode != ControlMode.Balanced || (hires && SoftInHires) ? ResidualWeighting.Soft
        : ResidualWeighting.Uniform;
}

/// <summary>A1111 ControlNet extension's "Control Mode".</summary>
public enum ControlMode
{
    /// <summary>"Balanced": the residuals as they are.</summary>
    Balanced,

    /// <summary>"My prompt is more important": soft injection, the residuals weighted 0.825^(12 - i).</summary>
    PromptMoreImportant,

    /// <summary>"ControlNet is more important": soft injection on the conditioned prediction only (cfg injection).</summary>
    ControlNetMoreImportant,
}
