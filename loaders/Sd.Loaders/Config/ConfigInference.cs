using System.Globalization;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Config;

/// <summary>
/// Rebuilds component configs from weight shapes, for single-file checkpoints that ship none. Works on diffusers
/// names, so it is independent of the file layout. Shapes fix the architecture but not the head counts, CLIP's
/// activation, the VAE's scaling factor and tile size or the scheduler: those follow the SD family the shapes resemble
/// (SD 1.x: 768-wide text context, 8 UNet heads everywhere; SD 2.x: 64-wide heads) and each is reported to the
/// optional <c>guesses</c> list, since for any other model they are likely wrong.
/// </summary>
public static partial class ConfigInference
{
    /// <summary>SD 1.x/2.x scheduler settings (the v1-inference.yaml values), used when a file brings none.</summary>
    public static SchedulerConfig Sd1Scheduler { get; } = new()
    {
        ClassName = "PNDMScheduler",
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        BetaSchedule = "scaled_linear",
        StepsOffset = 1,
        SkipPrkSteps = true,
        SetAlphaToOne = false,
        ClipSample = false,
    };

    /// <summary>
    /// <see cref="Sd1Scheduler"/>, recorded as a guess: a single file stores no schedule. A UNet with a 1024-wide text
    /// context (SD 2.x) gets v-prediction, as diffusers' from_single_file guesses for an SD 2.x file without a
    /// global_step (safetensors files have none): the 768-px v model, which the UNet guess's 96-latent sample size
    /// assumes too. SD 2.x 512-base is epsilon and needs its own scheduler config.
    /// </summary>
    public static SchedulerConfig Scheduler(UNetConfig unet, ICollection<InferredSetting>? guesses = null)
    {
        bool sd2 = unet.CrossAttentionDim[0] == 1024;
        SchedulerConfig s = sd2 ? Sd1Scheduler with { PredictionType = "v_prediction" } : Sd1Scheduler;
        guesses?.Add(new("scheduler", "scheduler", $"{s.ClassName}, {s.BetaSchedule} betas {s.BetaStart}..{s.BetaEnd}, {s.PredictionType} prediction",
            sd2
                ? "the SD 2.x training schedule with v-prediction, as diffusers guesses for SD 2.x 768-v files; SD 2.x 512-base predicts epsilon and needs its own scheduler config"
                : "the SD 1.x training schedule; v-prediction models need their own scheduler config"));
        return s;
    }

    public static UNetConfig UNet(WeightSet weights, ICollection<InferredSetting>? guesses = null) =>
        InferUNet(weights, guesses, "unet", encoderOnly: false);

    /// <summary>
    /// The UNet config the shapes imply; with <paramref name="encoderOnly"/> (a ControlNet's copy of the encoder) there
    /// are no up blocks or conv_out, so the up blocks mirror the down blocks as a ControlNet config's do.
    /// </summary>
    private static UNetConfig InferUNet(WeightSet weights, ICollection<InferredSetting>? guesses, string component, bool encoderOnly)
    {
        int blocks = CountIndices(weights, "down_blocks."), upBlocks = encoderOnly ? blocks : CountIndices(weights, "up_blocks.");
        if (blocks == 0 || blocks > ConfigLimits.MaxBlocks || upBlocks != blocks)
        {
            throw new InvalidFileException(weights.Source,
                $"cannot infer the UNet layout: {blocks} down blocks, {upBlocks} up blocks (expected as many of each, 1 to {ConfigLimits.MaxBlocks})");
        }
        var channels = new int[blocks];
        var down = new string[blocks];
        var transformerLayers = new int[blocks];
        for (int i = 0; i < blocks; i++)
        {
            channels[i] = Dim(weights, $"down_blocks.{i}.resnets.0.conv2.weight", 0);
            bool attention = HasPrefix(weights, $"down_blocks.{i}.attentions.0.");
            down[i] = attention ? "CrossAttnDownBlock2D" : "DownBlock2D";
            transformerLayers[i] = attention ? CountIndices(weights, $"down_blocks.{i}.attentions.0.transformer_blocks.") : 1;
        }
        // A ControlNet has no up blocks: they mirror the down blocks, as its config's do. A UNet's are read.
        string[] up = UNetConfig.MirroredUpBlocks(down);
        for (int i = 0; i < blocks && !encoderOnly; i++)
        {
            up[i] = HasPrefix(weights, $"up_blocks.{i}.attentions.0.") ? "CrossAttnUpBlock2D" : "UpBlock2D";
        }
        string? crossKey = FirstEndingWith(weights, ".attn2.to_k.weight");
        int crossDim = crossKey is null ? 768 : Dim(weights, crossKey, 1);
        var heads = new int[blocks];
        for (int i = 0; i < blocks; i++)
        {
            heads[i] = crossDim == 768 ? 8 : Math.Max(1, channels[i] / 64);
        }
        guesses?.Add(new(component, "attention heads", $"[{string.Join(", ", heads)}]",
            (crossDim == 768 ? "8 per block as in SD 1.x, whose text context is 768 wide" : "64 channels per head as in SD 2.x")
            + Unfamiliar(crossDim, $"a {crossDim}-wide text context")));
        string? projIn = FirstEndingWith(weights, ".proj_in.weight");
        int inChannels = Dim(weights, "conv_in.weight", 1);
        var config = new UNetConfig
        {
            SampleSize = crossDim == 768 ? 64 : 96,
            InChannels = inChannels,
            OutChannels = encoderOnly ? inChannels : Dim(weights, "conv_out.weight", 0),
            DownBlockTypes = down,
            UpBlockTypes = up,
            OnlyCrossAttention = new bool[blocks],
            BlockOutChannels = channels,
            LayersPerBlock = Filled(blocks, CountIndices(weights, "down_blocks.0.resnets.")),
            CrossAttentionDim = Filled(blocks, crossDim),
            TransformerLayersPerBlock = transformerLayers,
            NumAttentionHeads = heads,
            UseLinearProjection = projIn is not null && weights.TryGet(projIn, out TensorEntry p) && p.Shape.Length == 2,
        };
        RequireSdNormGroups(weights, channels);
        config.Validate(weights.Source);
        return config;
    }

    public static VaeConfig Vae(WeightSet weights, ICollection<InferredSetting>? guesses = null)
    {
        int blocks = CountIndices(weights, "encoder.down_blocks.");
        if (blocks == 0 || blocks > ConfigLimits.MaxBlocks)
        {
            throw new InvalidFileException(weights.Source, $"cannot infer the VAE layout: {blocks} encoder.down_blocks (expected 1 to {ConfigLimits.MaxBlocks})");
        }
        var channels = new int[blocks];
        for (int i = 0; i < blocks; i++)
        {
            channels[i] = Dim(weights, $"encoder.down_blocks.{i}.resnets.0.conv2.weight", 0);
        }
        var down = new string[blocks];
        var up = new string[blocks];
        Array.Fill(down, "DownEncoderBlock2D");
        Array.Fill(up, "UpDecoderBlock2D");
        var config = new VaeConfig
        {
            InChannels = Dim(weights, "encoder.conv_in.weight", 1),
            OutChannels = Dim(weights, "decoder.conv_out.weight", 0),
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = channels,
            LayersPerBlock = CountIndices(weights, "encoder.down_blocks.0.resnets."),
            LatentChannels = Dim(weights, "post_quant_conv.weight", 0),
            SampleSize = 512,
        };
        RequireSdNormGroups(weights, channels);
        config.Validate(weights.Source);
        guesses?.Add(new("vae", "scaling factor", VaeConfig.DefaultScalingFactor.ToString(CultureInfo.InvariantCulture), "the SD 1.x/2.x value"));
        guesses?.Add(new("vae", "sample size", $"{config.SampleSize} px", "the SD 1.x/2.x value; it sets the tile size of tiled decoding"));
        return config;
    }

    public static ClipTextConfig ClipText(WeightSet weights, ICollection<InferredSetting>? guesses = null)
    {
        const string embedding = "text_model.embeddings.token_embedding.weight";
        int hidden = Dim(weights, embedding, 1);
        var config = new ClipTextConfig
        {
            VocabSize = Dim(weights, embedding, 0),
            HiddenSize = hidden,
            IntermediateSize = Dim(weights, "text_model.encoder.layers.0.mlp.fc1.weight", 0),
            ProjectionDim = hidden,
            NumHiddenLayers = CountIndices(weights, "text_model.encoder.layers."),
            NumAttentionHeads = Math.Max(1, hidden / 64),
            MaxPositionEmbeddings = Dim(weights, "text_model.embeddings.position_embedding.weight", 0),
            // OpenAI CLIP ViT-L/14 (SD 1.x, width 768) uses quick_gelu; OpenCLIP ViT-H (SD 2.x) uses gelu.
            HiddenAct = hidden == 768 ? "quick_gelu" : "gelu",
        };
        config.Validate(weights.Source);
        string unfamiliar = Unfamiliar(hidden, $"a width of {hidden}");
        guesses?.Add(new("text_encoder", "attention heads", config.NumAttentionHeads.ToString(CultureInfo.InvariantCulture),
            "64 channels per head as in SD 1.x/2.x's CLIP models" + unfamiliar));
        guesses?.Add(new("text_encoder", "hidden_act", config.HiddenAct,
            (hidden == 768 ? "OpenAI CLIP ViT-L/14's, SD 1.x's text encoder at width 768" : "OpenCLIP ViT-H's, SD 2.x's text encoder at width 1024") + unfamiliar));
        return config;
    }

    /// <summary>
    /// The warning a guess gets when the width it is based on is neither SD 1.x's (768) nor SD 2.x's (1024):
    /// the model is then of no known family and the family values are unlikely to be its own.
    /// </summary>
    private static string Unfamiliar(int width, string what) =>
        width is 768 or 1024 ? "" : $"; {what} fits neither SD 1.x's 768 nor SD 2.x's 1024, so this is likely wrong";

    /// <summary>
    /// GroupNorm weights do not show their group count: inference keeps SD's 32, which must divide every block's
    /// channels. Otherwise the model is not an SD one and only its own config can say how it normalizes.
    /// </summary>
    private static void RequireSdNormGroups(WeightSet weights, int[] channels)
    {
        const int groups = 32; // the UNet's and the VAE's config default
        foreach (int c in channels)
        {
            if (c % groups != 0)
            {
                throw new InvalidFileException(weights.Source,
                    $"block channels [{string.Join(", ", channels)}] are not all multiples of {groups}, the norm_num_groups of every SD model: give this checkpoint a config folder (--config) that states its norm_num_groups");
            }
        }
    }

    private static int Dim(WeightSet weights, string name, int axis)
    {
        if (!weights.TryGet(name, out TensorEntry entry) || entry.Shape.Length <= axis)
        {
            throw new InvalidFileException(weights.Source, $"cannot infer the config: tensor '{name}' is missing or has too few dimensions");
        }
        long size = entry.Shape[axis];
        if (size < 1 || size > int.MaxValue)
        {
            throw new InvalidFileException(weights.Source, $"cannot infer the config: tensor '{name}' has size {size} along axis {axis}, expected 1 to {int.MaxValue}");
        }
        return (int)size;
    }

    /// <summary>
    /// Number of consecutive indices i (from 0) with some key starting "{prefix}{i}.", in one pass over the keys (a
    /// scan per index was quadratic in a file that lists many).
    /// </summary>
    private static int CountIndices(WeightSet weights, string prefix)
    {
        var seen = new HashSet<int>();
        foreach (TensorEntry entry in weights.Entries)
        {
            string name = entry.Name;
            int dot = name.StartsWith(prefix, StringComparison.Ordinal) ? name.IndexOf('.', prefix.Length) : -1;
            if (dot < 0)
            {
                continue;
            }
            ReadOnlySpan<char> digits = name.AsSpan(prefix.Length, dot - prefix.Length);
            // Only the canonical spelling ("7", not "07" or "+7") is the key "{prefix}7.".
            if (int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int index)
                && (digits.Length == 1 || digits[0] != '0'))
            {
                seen.Add(index);
            }
        }
        int count = 0;
        while (seen.Contains(count))
        {
            count++;
        }
        return count;
    }

    private static bool HasPrefix(WeightSet weights, string prefix)
    {
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    private static string? FirstEndingWith(WeightSet weights, string suffix)
    {
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return entry.Name;
            }
        }
        return null;
    }

    private static int[] Filled(int count, int value)
    {
        var result = new int[count];
        Array.Fill(result, value);
        return result;
    }
}
