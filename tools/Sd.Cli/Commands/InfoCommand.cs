using System.Globalization;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd info MODEL [--variant fp16] [--tokenizer DIR] [--config DIR] [--vae VAE]</c>: what a model holds and what it
/// will cost; for a ControlNet, T2I-Adapter or IP-Adapter, what it is and which UNets it can steer; for an image
/// encoder, LoRA, embedding or upscaler, what it holds.
/// </summary>
public static partial class InfoCommand
{
    private const string Help = """
        Usage: sd info MODEL [--variant NAME] [--tokenizer DIR] [--config DIR] [--vae VAE]

        Prints the model's components, stored dtypes, parameter counts, configs and an estimate of the memory the
        weights take once loaded for fp32 compute. For a single-file checkpoint it also lists the settings the file
        does not store and that were guessed from the SD family its shapes resemble. --vae shows the model with a
        separate VAE in place of its own (see sd generate --help), and that VAE's guessed settings if it is one file.
        A ControlNet (a diffusers ControlNetModel folder, or a .safetensors file in diffusers or original format, as
        sd generate --controlnet takes) is described the same way: its naming, weights, config (what a config
        inferred from the shapes assumed), and the UNets it fits; so is a T2I-Adapter (sd generate --adapter).
        --variant is the only option they take. An IP-Adapter file (sd generate --ip-adapter) is described by its
        image projection (plain, Plus or full-face), the UNets it fits and the image encoder beside it; an image
        encoder folder (--image-encoder) by its network. A .safetensors file with no model in it is described as the LoRA
        (modules, types, ranks, alphas, kohya's metadata), textual-inversion embedding (vectors, width, token) or ESRGAN
        upscaler (network, scale) it is, unless --variant, --tokenizer, --config or --vae ask for a model.
          MODEL             diffusers folder, single-file .safetensors checkpoint, ControlNet, T2I-Adapter,
                            IP-Adapter, image encoder, LoRA, embedding or upscaler
          --variant NAME    prefer diffusers weight variant NAME (e.g. fp16)
          --tokenizer DIR   tokenizer folder (vocab.json, merges.txt), for single-file checkpoints
          --config DIR      for single-file checkpoints: a diffusers-layout folder whose configs (unet/config.json,
                            vae/config.json, text_encoder/config.json, scheduler/scheduler_config.json, tokenizer/:
                            whichever it has) replace the inferred ones; each must fit the checkpoint's tensors
          --vae VAE         a separate VAE in place of the model's own (a diffusers VAE folder or one .safetensors)
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        var line = new CommandLine("info", args, ["--variant", "--tokenizer", "--config", "--vae"], [], maxPositionals: 1);
        if (line.Positionals.Count != 1)
        {
            throw new UsageException("info: expected exactly one MODEL path (see `sd info --help`)");
        }
        string path = line.Positionals[0];
        if (ControlNetSource.IsControlNet(path))
        {
            RefuseModelOptions(line, path, "a ControlNet");
            using ControlNetSource controlNet = ControlNetSource.Open(path, line.Get("--variant"));
            WriteControlNet(controlNet, output);
            return 0;
        }
        if (T2IAdapterSource.IsAdapter(path))
        {
            RefuseModelOptions(line, path, "a T2I-Adapter");
            using T2IAdapterSource adapter = T2IAdapterSource.Open(path, line.Get("--variant"));
            WriteAdapter(adapter, output);
            return 0;
        }
        if (IpAdapterSource.IsIpAdapter(path))
        {
            RefuseModelOptions(line, path, "an IP-Adapter");
            if (line.Has("--variant")) throw new UsageException($"info: {path} is an IP-Adapter file; --variant applies to folders");
            using IpAdapterSource ipAdapter = IpAdapterSource.Open(path);
            WriteIpAdapter(ipAdapter, output);
            return 0;
        }
        if (ImageEncoderSource.IsImageEncoder(path))
        {
            RefuseModelOptions(line, path, "an image encoder");
            using ImageEncoderSource encoder = ImageEncoderSource.Open(path, line.Get("--variant"));
            WriteImageEncoder(encoder, output);
            return 0;
        }
        // A model's options ask for a model: a LoRA, embedding or upscaler is then not looked for.
        if (!line.Has("--variant") && !line.Has("--tokenizer") && !line.Has("--config") && !line.Has("--vae") && TryWriteAddOn(path, output))
        {
            return 0;
        }
        using ModelSource model = ModelSource.Open(path, ModelOptions.OpenOptions(line));
        Write(model, output);
        return 0;
    }

    /// <summary>The options that choose a model's files, refused for <paramref name="path"/>, which is <paramref name="what"/>.</summary>
    private static void RefuseModelOptions(CommandLine line, string path, string what)
    {
        foreach (string flag in (string[])["--tokenizer", "--config", "--vae"])
        {
            if (line.Has(flag)) throw new UsageException($"info: {path} is {what}; {flag} applies to models");
        }
    }

    /// <summary>A ControlNet's naming, weights, config and guesses, and the UNets it fits.</summary>
    public static void WriteControlNet(ControlNetSource source, TextWriter output)
    {
        ControlNetConfig config = source.Config;
        UNetConfig encoder = config.Encoder;
        WeightSet weights = source.Weights;
        output.WriteLine($"controlnet: {source.Path}");
        output.WriteLine($"format:     {source.Format switch
        {
            ControlNetFormat.Diffusers => "diffusers ControlNetModel names",
            ControlNetFormat.Original => "original format (cldm names, as lllyasviel's ControlNet 1.1 files)",
            _ => $"original format in a whole ControlLDM (control_model.*; its SD model's {source.SkippedKeyCount} tensors not read)",
        }}, config {source.ConfigFile switch
        {
            null => "inferred from its shapes",
            { } file when file.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) => $"inferred from its shapes and {file}",
            { } file => $"from {file}",
        }}");
        output.WriteLine($"weights:    {Count(weights.ParameterCount)} parameters in {weights.Count} tensors, {DTypeSummary(weights)}, {Mib(weights.StoredBytes)} stored");
        output.WriteLine($"  source:   {weights.Source}");
        output.WriteLine($"encoder:    {UNetSummary(encoder)}");
        output.WriteLine($"picture:    {config.ConditioningChannels} channels ({(config.BgrConditioning ? "BGR" : "RGB")} order), embedding " +
            $"[{string.Join(", ", config.ConditioningEmbeddingOutChannels)}], {config.ConditioningScaleFactor}x the latents' size" +
            (config.GlobalPoolConditions ? ", residuals pooled over the picture (always in guess mode)" : ""));
        foreach (InferredSetting guess in source.InferredSettings)
        {
            output.WriteLine($"  guessed: {guess.Setting} {guess.Value}, not stored in the file: {guess.Basis}; a config.json (or an original file's STEM.yaml) beside it overrides it");
        }
        output.WriteLine($"steers:     UNets of blocks [{string.Join(", ", encoder.BlockOutChannels)}] with cross-attention {encoder.CrossAttentionDim[0]} " +
            $"and {encoder.InChannels} latent channels{Family(encoder.CrossAttentionDim[0])}");
        output.WriteLine();
        output.WriteLine($"memory:     {Mib(weights.StoredBytes)} stored; about {Mib(weights.ParameterCount * sizeof(float))} as fp32 weights " +
            "(3x3 convolutions packed for Winograd take up to 4x their share)");
    }

    /// <summary>A T2I-Adapter's weights and config, and the UNets it fits.</summary>
    public static void WriteAdapter(T2IAdapterSource source, TextWriter output)
    {
        T2IAdapterConfig config = source.Config;
        WeightSet weights = source.Weights;
        output.WriteLine($"t2i-adapter: {source.Path}");
        output.WriteLine($"weights:     {Count(weights.ParameterCount)} parameters in {weights.Count} tensors, {DTypeSummary(weights)}, {Mib(weights.StoredBytes)} stored");
        output.WriteLine($"  source:    {weights.Source}");
        string channels = config.InChannels == 1 ? "1 channel (gray)" : $"{config.InChannels} channels (RGB)";
        output.WriteLine($"picture:     {channels}, {config.DownscaleFactor}x the latents' size");
        output.WriteLine($"features:    [{string.Join(", ", config.Channels)}] x{config.NumResBlocks} resnets: for UNets whose down blocks are that wide");
        output.WriteLine();
        output.WriteLine($"memory:      {Mib(weights.StoredBytes)} stored; about {Mib(weights.ParameterCount * sizeof(float))} as fp32 weights; it runs once per pass");
    }

    /// <summary>The SD family a cross-attention width belongs to, as a note.</summary>
    private static string Family(int crossAttention) => crossAttention switch
    {
        768 => " (SD 1.x)",
        1024 => " (SD 2.x)",
        _ => "",
    };

    public static void Write(ModelSource model, TextWriter output)
    {
        output.WriteLine($"model:     {model.Path}");
        output.WriteLine($"format:    {Format(model)}");
        long totalFp32 = 0;
        long totalStored = 0;
        foreach (ModelComponent component in model.Components)
        {
            WeightSet weights = model.Weights(component);
            totalFp32 += weights.ParameterCount * sizeof(float);
            totalStored += weights.StoredBytes;
            output.WriteLine();
            output.WriteLine($"{ModelSource.FolderName(component)}: {Count(weights.ParameterCount)} parameters in {weights.Count} tensors, {DTypeSummary(weights)}, {Mib(weights.StoredBytes)} stored");
            output.WriteLine($"  source:  {weights.Source}");
            output.WriteLine($"  config:  {ConfigSummary(model, component)}");
            WriteGuesses(model, ModelSource.FolderName(component), output);
        }
        if (model.Scheduler is { } scheduler)
        {
            output.WriteLine();
            output.WriteLine($"scheduler: {scheduler.ClassName}, {scheduler.BetaSchedule} betas {scheduler.BetaStart}..{scheduler.BetaEnd}, {scheduler.NumTrainTimesteps} train steps, prediction {scheduler.PredictionType}, steps_offset {scheduler.StepsOffset}");
            WriteGuesses(model, "scheduler", output);
        }
        output.WriteLine(model.Tokenizer is { } tokenizer
            ? $"tokenizer: {tokenizer.Directory} (pad '{tokenizer.PadToken}', max length {tokenizer.ModelMaxLength})"
            : "tokenizer: none (pass --tokenizer DIR, or --config DIR with a tokenizer/ folder, to tokenize prompts)");
        if (model.Kind == ModelSourceKind.SingleFile)
        {
            output.WriteLine($"keys:      {model.IgnoredKeyCount} ignored (DDPM buffers, EMA, position_ids), {model.UnexpectedKeys.Count} unexpected");
            for (int i = 0; i < Math.Min(10, model.UnexpectedKeys.Count); i++)
            {
                output.WriteLine($"  unexpected: {model.UnexpectedKeys[i]}");
            }
        }
        output.WriteLine();
        output.WriteLine($"memory:    {Mib(totalStored)} stored; about {Mib(totalFp32)} as fp32 weights (3x3 convolutions packed for Winograd take up to 4x their share)");
    }

    private static string Format(ModelSource model) =>
        model.Kind == ModelSourceKind.DiffusersFolder ? $"diffusers folder ({model.Index!.PipelineClass})"
        : model.ConfigDirectory is { } configs ? $"single-file checkpoint (configs from {configs} where it has them, else inferred from shapes)"
        : "single-file checkpoint (configs inferred from shapes)";

    /// <summary>The component's settings that inference assumed, one line each under its config.</summary>
    private static void WriteGuesses(ModelSource model, string component, TextWriter output)
    {
        foreach (InferredSetting guess in model.InferredSettings)
        {
            if (guess.Component == component)
            {
                string fix = component == "vae" && model.VaePath is not null
                    ? "give --vae a VAE folder with its config.json, or a single-file model --config DIR with a vae/config.json"
                    : "pass --config DIR";
                output.WriteLine($"  guessed: {guess.Setting} {guess.Value}, not stored in the file: {guess.Basis}; {fix} to override");
            }
        }
    }

    private static string ConfigSummary(ModelSource model, ModelComponent component) => component switch
    {
        ModelComponent.Unet when model.UNet is { } u =>
            $"{UNetSummary(u)}, in/out {u.InChannels}/{u.OutChannels}, sample size {u.SampleSize?.ToString(CultureInfo.InvariantCulture) ?? "?"}" +
            (u.TimeCondProjDim is { } condDim ? $", LCM-distilled (guidance embedding {condDim}, no CFG)" : ""),
        ModelComponent.Vae when model.Vae is { } v =>
            $"blocks [{string.Join(", ", v.BlockOutChannels)}] x{v.LayersPerBlock} layers, latent channels {v.LatentChannels}, " +
            $"downscale {v.DownscaleFactor}x, scaling factor {v.ScalingFactor.ToString(CultureInfo.InvariantCulture)}",
        ModelComponent.TextEncoder when model.TextEncoder is { } t =>
            $"width {t.HiddenSize}, {t.NumHiddenLayers} layers, {t.NumAttentionHeads} heads, MLP {t.IntermediateSize}, {t.HiddenAct}, " +
            $"{t.MaxPositionEmbeddings} positions, vocab {t.VocabSize}",
        _ => "none",
    };

    /// <summary>A UNet's (or a ControlNet encoder's) blocks, attention and projections.</summary>
    private static string UNetSummary(UNetConfig u) =>
        $"blocks [{string.Join(", ", u.BlockOutChannels)}] x{u.LayersPerBlock[0]} layers, down [{string.Join(", ", u.DownBlockTypes)}], " +
        $"heads [{string.Join(", ", u.NumAttentionHeads)}], cross-attention {u.CrossAttentionDim[0]}, {(u.UseLinearProjection ? "linear" : "conv")} proj_in/out";

    private static string DTypeSummary(WeightSet weights)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (TensorEntry entry in weights.Entries)
        {
            string name = entry.DType.Name();
            counts[name] = counts.GetValueOrDefault(name) + 1;
        }
        var parts = new List<string>(counts.Count);
        foreach ((string name, int count) in counts)
        {
            parts.Add($"{name} x{count}");
        }
        return string.Join(" ", parts);
    }

    private static string Count(long parameters) =>
        parameters >= 1_000_000 ? (parameters / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "M"
        : parameters.ToString(CultureInfo.InvariantCulture);

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";
}
