using Sd.Loaders.Checkpoints;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Lora;

/// <summary>
/// Finds the weight each LoRA module changes in a component's weights (diffusers names, whatever file layout the
/// model came in) and checks that the module's shapes fit it, before anything is loaded: a LoRA made for another
/// model fails here, naming its first module that does not fit, instead of half-applying.
/// </summary>
public static class LoraTargets
{
    /// <summary>
    /// <paramref name="weights"/> (of <paramref name="component"/>) with the modules of every LoRA for that component
    /// to be merged as they load, each scaled by its file's weight (1 as trained; 0 changes nothing; negative
    /// subtracts) times the module's own <see cref="LoraModule.Scale"/> (a bias's change by the file's weight alone).
    /// Several LoRAs changing one weight merge in the order given: they add up, but a DoRA module normalises what the
    /// LoRAs before it left. Unchanged when no module is for the component.
    /// </summary>
    public static WeightSet Apply(WeightSet weights, ModelComponent component, IReadOnlyList<(LoraFile File, float Scale)> loras)
    {
        var deltas = new Dictionary<string, List<WeightDelta>>(StringComparer.Ordinal);
        Dictionary<string, string?>? flatNames = null;
        int textLayers = component == ModelComponent.TextEncoder ? TextLayerCount(weights) : 0;
        foreach ((LoraFile lora, float scale) in loras)
        {
            if (!float.IsFinite(scale))
            {
                throw new ArgumentOutOfRangeException(nameof(loras), scale, $"the scale of LoRA {lora.Path} must be finite");
            }
            foreach (LoraModule module in lora.Modules)
            {
                if (module.Component != component || ChangesNothingSdComputes(module, weights, textLayers))
                {
                    continue;
                }
                string name = module.FlatTarget
                    ? FlatName(lora, module, flatNames ??= FlatNames(weights, component), component)
                    : module.Target + ".weight";
                Add(lora, module, module.Weight, name, scale * module.Scale, scale);
                if (module.Bias is { } bias)
                {
                    // A1111 scales a bias's difference by the user's weight alone.
                    Add(lora, module, bias, name[..^".weight".Length] + ".bias", scale, scale);
                }
            }
        }

        void Add(LoraFile lora, LoraModule module, LoraUpdate update, string name, double scale, float strength)
        {
            if (!weights.TryGet(name, out TensorEntry entry))
            {
                throw update == module.Bias
                    ? new InvalidFileException(lora.Path, $"LoRA module '{module.Key}' ({module.Type}) changes the bias '{name}', which the model's layer does not have")
                    : NotInModel(lora, module, component, $"'{name}'");
            }
            RequireFits(lora, module, update, entry);
            bool perInput = update == module.Weight && module.Magnitude is { } magnitude && MagnitudePerInput(lora, module, magnitude, entry);
            if (!deltas.TryGetValue(name, out List<WeightDelta>? list))
            {
                deltas.Add(name, list = new List<WeightDelta>());
            }
            foreach (WeightDelta earlier in list)
            {
                if (earlier.File == lora.File)
                {
                    throw new InvalidFileException(lora.Path, $"LoRA modules '{earlier.Module.Key}' and '{module.Key}' both change '{name}'");
                }
            }
            list.Add(new WeightDelta(module, update, lora.File, (float)scale, strength, perInput));
        }

        if (deltas.Count == 0)
        {
            return weights;
        }
        var merged = new Dictionary<string, WeightDelta[]>(StringComparer.Ordinal);
        foreach ((string name, List<WeightDelta> list) in deltas)
        {
            merged.Add(name, list.ToArray());
        }
        return weights.WithDeltas(merged);
    }

    /// <summary>
    /// kohya's module names ("down_blocks_0_attentions_0_proj_in") to the weights' names
    /// ("down_blocks.0.attentions.0.proj_in.weight"), and for the UNet its original LDM modules' names too
    /// ("input_blocks_1_1_proj_in"); null for a name two weights share (never in a diffusers model).
    /// </summary>
    private static Dictionary<string, string?> FlatNames(WeightSet weights, ModelComponent component)
    {
        var flat = new Dictionary<string, string?>(StringComparer.Ordinal);
        void Add(string module, string weight)
        {
            string key = module.Replace('.', '_');
            if (!flat.TryAdd(key, weight))
            {
                flat[key] = null;
            }
        }
        var names = new List<string>(weights.Count);
        foreach (TensorEntry entry in weights.Entries)
        {
            if (entry.Name.EndsWith(".weight", StringComparison.Ordinal))
            {
                names.Add(entry.Name);
                Add(entry.Name[..^".weight".Length], entry.Name);
            }
        }
        if (component == ModelComponent.Unet)
        {
            foreach ((string ldm, string name) in UnetLdmNames.Of(names))
            {
                Add(ldm[..^".weight".Length], name);
            }
        }
        return flat;
    }

    private static string FlatName(LoraFile lora, LoraModule module, Dictionary<string, string?> flatNames, ModelComponent component)
    {
        if (!flatNames.TryGetValue(module.Target, out string? name))
        {
            throw NotInModel(lora, module, component, $"a weight named like '{module.Target}'");
        }
        return name ?? throw new InvalidFileException(lora.Path, $"LoRA module '{module.Key}' could mean more than one weight of the {Name(component)}");
    }

    /// <summary>
    /// Changes to text-encoder parts SD 1.x/2.x never run, which ComfyUI's text encoders carry and its LoRA extraction
    /// writes: CLIP's text_projection (the projected pooled vector is CLIP's image-text similarity's; SD's UNet reads
    /// the hidden states), and the last of open_clip's 24 layers in SD 2.x's clip_h (SD 2.x conditions on the
    /// penultimate layer's output, so its diffusers text encoder has 23).
    /// </summary>
    private static bool ChangesNothingSdComputes(LoraModule module, WeightSet weights, int textLayers) =>
        module.Component == ModelComponent.TextEncoder
        && ((module.Target == "text_projection" && !weights.TryGet("text_projection.weight", out _))
            || (module.Key.StartsWith(LoraFile.ComfyOpenClipPrefix, StringComparison.Ordinal) && textLayers == 23
                && module.Target.StartsWith("text_model_encoder_layers_23_", StringComparison.Ordinal)));

    private static int TextLayerCount(WeightSet weights)
    {
        int layers = 0;
        while (weights.TryGet($"text_model.encoder.layers.{layers}.layer_norm1.weight", out _))
        {
            layers++;
        }
        return layers;
    }

    private static InvalidFileException NotInModel(LoraFile lora, LoraModule module, ModelComponent component, string looked) => new(lora.Path,
        $"LoRA module '{module.Key}' changes no weight of the model's {Name(component)} (no {looked}): the LoRA was made for another model (SD 1.x, 2.x and SDXL LoRAs do not mix)");

    /// <summary>
    /// The update [rows, columns] must have W's first size and W's other sizes' product; a kernel size it states, W's
    /// (a 2-D weight's is 1x1). A single low-rank product's rank must be low: at most W's smaller side. Any product's
    /// up and down (made whole for the GEMM, a Tucker core folded in) may hold at most twice W's elements, so a merge
    /// never needs much more memory than W itself, whatever ranks a file states.
    /// </summary>
    private static void RequireFits(LoraFile lora, LoraModule module, LoraUpdate update, TensorEntry entry)
    {
        long[] w = entry.Shape;
        bool fits = w.Length is 1 or 2 or 4 && w[0] > 0 && update.Rows == w[0] && update.Columns == entry.ElementCount / w[0]
            && (update.KernelHeight == 0 || (update.KernelHeight == KernelSize(w, 2) && update.KernelWidth == KernelSize(w, 3)));
        if (!fits)
        {
            throw new InvalidFileException(lora.Path,
                $"LoRA module '{module.Key}' ({module.Type}, {Describe(update)}) does not fit '{entry.Name}' of shape {TensorInfo.ShapeText(w)}");
        }
        long smaller = Math.Min(w[0], entry.ElementCount / w[0]);
        if (update.Kind == LoraUpdateKind.Single && update.First.Rank > smaller)
        {
            throw new InvalidFileException(lora.Path,
                $"LoRA module '{module.Key}' has rank {update.First.Rank}, more than the {smaller} of '{entry.Name}' {TensorInfo.ShapeText(w)}: no low-rank change");
        }
        foreach (LoraFactor? factor in (ReadOnlySpan<LoraFactor?>)[update.First, update.Second])
        {
            // Rows and columns are at most W's here, so the product cannot overflow.
            if (factor is { IsProduct: true } && factor.Rank * (factor.Rows + factor.Columns) > 2 * entry.ElementCount)
            {
                throw new InvalidFileException(lora.Path,
                    $"LoRA module '{module.Key}' ({module.Type}) has a factor of rank {factor.Rank} for '{entry.Name}' {TensorInfo.ShapeText(w)}: its up and down would hold more than twice the weight's elements; no low-rank change");
            }
        }
    }

    /// <summary>
    /// Whether DoRA's magnitude is per input channel, by the shapes its name's tools write: kohya's, LyCORIS's and
    /// ComfyUI's dora_scale is [out, 1...] per output row, or [1, in, 1...] per input channel (LyCORIS without
    /// wd_on_out); PEFT's lora_magnitude_vector is per output row, [out] for a Linear, [1, out, 1, 1] for a conv.
    /// </summary>
    private static bool MagnitudePerInput(LoraFile lora, LoraModule module, TensorInfo magnitude, TensorEntry entry)
    {
        long[] w = entry.Shape, m = magnitude.Shape;
        long count = magnitude.ElementCount;
        if (w.Length < 2)
        {
            throw new InvalidFileException(lora.Path, $"LoRA module '{module.Key}' has a DoRA magnitude for '{entry.Name}' {TensorInfo.ShapeText(w)}; DoRA changes Linear and conv weights (2-D or 4-D)");
        }
        if (module.PeftMagnitude
            ? count == w[0] && (m.Length == 1 || (w.Length == 4 && m.Length == 4 && m[1] == w[0]))
            : m.Length >= 1 && m[0] == w[0] && count == w[0])
        {
            return false;
        }
        if (!module.PeftMagnitude && m.Length >= 2 && m[0] == 1 && m[1] == w[1] && count == w[1])
        {
            return true;
        }
        throw new InvalidFileException(lora.Path, $"LoRA module '{module.Key}' has a DoRA magnitude '{magnitude.Name}' of shape {TensorInfo.ShapeText(m)} for '{entry.Name}' {TensorInfo.ShapeText(w)}: expected " +
            (module.PeftMagnitude ? "one value per output row, as PEFT stores it ([out] for a Linear, [1, out, 1, 1] for a conv)" : "one value per output row ([out, 1, ...]) or per input channel ([1, in, ...])"));
    }

    /// <summary>The update's tensors and shapes as the file names them: "up [320, 4] x down [4, 320, 3, 3]".</summary>
    private static string Describe(LoraUpdate update)
    {
        string first = Describe(update.First);
        return update.Kind switch
        {
            LoraUpdateKind.Hadamard => $"({first}) * ({Describe(update.Second!)})",
            LoraUpdateKind.Kronecker => $"kron({first}, {Describe(update.Second!)})",
            _ => first,
        };
    }

    private static string Describe(LoraFactor f) => f.Whole is { } whole
        ? TensorInfo.ShapeText(whole.Shape)
        : $"up {TensorInfo.ShapeText(f.Up!.Shape)}{(f.Core is { } core ? $" x core {TensorInfo.ShapeText(core.Shape)}" : "")} x down {TensorInfo.ShapeText(f.Down!.Shape)}";

    private static long KernelSize(long[] shape, int dim) => shape.Length == 4 ? shape[dim] : 1;

    private static string Name(ModelComponent component) => component == ModelComponent.Unet ? "UNet" : "text encoder";
}
