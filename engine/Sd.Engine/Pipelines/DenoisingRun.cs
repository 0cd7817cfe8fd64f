using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;

namespace Sd.Engine.Pipelines;

/// <summary>
/// One image of a request between its phases: prepared (latents drawn or encoded from a picture), denoised, decoded.
/// It owns its tensors until <see cref="TakeLatents"/> hands the latents to the result. <see cref="Conditioning"/>
/// (9-channel inpainting: [1, h, w, 5] mask and masked-picture latents) follows the scaled latents in every UNet
/// input; <see cref="AfterStep"/> (4-channel inpainting) blends the kept area back after each step.
/// </summary>
internal sealed class DenoisingRun(Scheduler scheduler, int start, Tensor latents, INoiseSource noise, PhaseTimes times) : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private Tensor? _latents = latents;

    public Scheduler Scheduler { get; } = scheduler;

    /// <summary>The schedule index the run starts at (img2img and inpainting skip the first steps).</summary>
    public int Start { get; } = start;

    public INoiseSource Noise { get; } = noise;

    public PhaseTimes Times { get; } = times;

    public Tensor Latents => _latents ?? throw new ObjectDisposedException(nameof(DenoisingRun), "the latents were handed to the result");

    public Tensor? Conditioning { get; set; }

    public Action<int>? AfterStep { get; set; }

    /// <summary>The UNet calls of the image's passes before this run and after it (a hires fix's), for progress reports.</summary>
    public int CallsBefore { get; set; }

    public int CallsAfter { get; set; }

    /// <summary>The image's denoising time before this run (its first pass, for a hires fix's second), for progress reports.</summary>
    public TimeSpan ElapsedBefore { get; set; }

    /// <summary>Makes the run dispose <paramref name="tensor"/> (may be null) with itself; returns it.</summary>
    public Tensor? Own(Tensor? tensor)
    {
        if (tensor is not null) _owned.Add(tensor);
        return tensor;
    }

    /// <summary>The final latents, no longer owned by the run.</summary>
    public Tensor TakeLatents()
    {
        Tensor result = Latents;
        _latents = null;
        return result;
    }

    public void Dispose()
    {
        _latents?.Dispose();
        _latents = null;
        foreach (IDisposable owned in _owned) owned.Dispose();
        _owned.Clear();
    }
}
