using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Lora;
using Sd.Loaders.Weights;

namespace Sd.Engine.Pipelines;

/// <summary>A LoRA to merge into a pipeline's model: its .safetensors file and its weight (1 as trained).</summary>
public sealed record LoraSpec(string Path, float Scale = 1f)
{
    /// <summary>The text encoder's weight where it differs from the UNet's <see cref="Scale"/> (A1111's <c>&lt;lora:name:te:unet&gt;</c>).</summary>
    public float? TextEncoderScale { get; init; }
}

/// <summary>
/// The LoRA files of a pipeline, open (mapped) for its lifetime: a pipeline that loads its components one at a time
/// merges them again at every load. Each file is matched against the model when the pipeline loads, so a LoRA made
/// for another model fails then, not at the first request.
/// </summary>
internal sealed class PipelineLoras : IDisposable
{
    private readonly List<(LoraFile File, LoraSpec Spec)> _files = new();

    /// <summary>Opens every LoRA of <paramref name="specs"/> (on failure, closes those already opened).</summary>
    public static PipelineLoras Open(IReadOnlyList<LoraSpec> specs)
    {
        var loras = new PipelineLoras();
        try
        {
            foreach (LoraSpec spec in specs)
            {
                // The scale is checked where every use of LoRAs passes: LoraTargets.Apply.
                loras._files.Add((LoraFile.Open(spec.Path), spec));
            }
            return loras;
        }
        catch
        {
            loras.Dispose();
            throw;
        }
    }

    /// <summary>
    /// How a component gets its weights: straight from the model, or, when LoRAs are given, with their modules for
    /// that component resolved now (and merged at each load).
    /// </summary>
    public Func<WeightSet> WeightsOf(ModelSource source, ModelComponent component)
    {
        if (_files.Count == 0)
        {
            return () => source.Weights(component);
        }
        var scaled = new List<(LoraFile File, float Scale)>(_files.Count);
        foreach ((LoraFile file, LoraSpec spec) in _files)
        {
            scaled.Add((file, component == ModelComponent.TextEncoder ? spec.TextEncoderScale ?? spec.Scale : spec.Scale));
        }
        WeightSet changed = LoraTargets.Apply(source.Weights(component), component, scaled);
        return () => changed;
    }

    public void Dispose()
    {
        foreach ((LoraFile file, _) in _files)
        {
            file.Dispose();
        }
        _files.Clear();
    }
}
