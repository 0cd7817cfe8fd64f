using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Engine.Vae;

namespace Sd.Engine.Pipelines;

/// <summary>When the pipeline's components (text encoder, UNet, VAE) are in memory.</summary>
public enum PipelineMemory
{
    /// <summary>
    /// All three are loaded by <see cref="StableDiffusionPipeline.Load"/> and stay loaded: the fastest for a service
    /// answering many requests. Activation buffers are still freed after each phase.
    /// </summary>
    Resident,

    /// <summary>
    /// One component at a time: each is loaded when its phase starts and freed when the next one loads, so peak
    /// memory is the largest single component instead of the sum (the UNet, about 5 GB for SD 1.5 in fp32, instead
    /// of 7.8 GB). Every request reloads the components (the files stay in the OS page cache); right for one-shot
    /// runs such as the CLI.
    /// </summary>
    Sequential,
}

/// <summary>How a <see cref="StableDiffusionPipeline"/> holds and runs its components.</summary>
public sealed record PipelineOptions
{
    public PipelineMemory Memory { get; init; } = PipelineMemory.Resident;

    public UNetOptions? UNet { get; init; }

    public VaeOptions? Vae { get; init; }

    /// <summary>
    /// LoRAs (kohya or diffusers .safetensors files) merged into the UNet and text encoder weights as they load, each
    /// at its scale; several add up. Merged, they cost nothing per step. Checked against the model at load.
    /// </summary>
    public IReadOnlyList<LoraSpec> Loras { get; init; } = [];

    /// <summary>
    /// Textual-inversion embeddings (.safetensors) added to the tokenizer and text encoder, each called up in prompts
    /// by its token. Read and checked against the model at load.
    /// </summary>
    public IReadOnlyList<EmbeddingSpec> Embeddings { get; init; } = [];
}
