using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>A separate VAE (<see cref="ModelOpenOptions.VaePath"/>) in place of the model's own.</summary>
public sealed partial class ModelSource
{
    // Training leftovers a standalone VAE checkpoint may carry: the GAN discriminator and LPIPS weights, EMA bookkeeping.
    private static readonly string[] VaeLeftoverPrefixes = ["loss.", "model_ema."];

    private static readonly string[] DiffusersVaePrefixes = ["encoder.down_blocks.", "decoder.up_blocks."];

    /// <summary>
    /// Replaces the VAE with the one at <paramref name="path"/>: a diffusers VAE folder (config.json and its plain
    /// weights, else its fp16 ones: the model's --variant is not the VAE's), or one .safetensors file with the VAE's
    /// tensors in diffusers' naming (encoder.down_blocks.0.resnets.0...) or the original one (encoder.down.0.block.0...,
    /// as vae-ft-mse-840000-ema-pruned.safetensors; in a whole checkpoint, its first_stage_model.* and nothing else).
    /// A file's config is the config folder's vae/config.json when <paramref name="given"/> has one, else inferred from
    /// its shapes (the guesses join <see cref="InferredSettings"/>); either must fit the tensors exactly, so a UNet,
    /// LoRA or stray tensor in the file fails here, by name.
    /// </summary>
    private void ReplaceVae(string path, ConfigFolder? given)
    {
        _weights.Remove(ModelComponent.Vae);
        if (Directory.Exists(path))
        {
            string configPath = System.IO.Path.Combine(path, "config.json");
            if (!File.Exists(configPath))
            {
                throw new InvalidFileException(path, "not a diffusers VAE folder: config.json is missing (for a model folder, give its vae/ folder)");
            }
            VaeConfig folderConfig = VaeConfig.Load(configPath);
            (string file, bool isIndex) = ComponentWeightFiles.Resolve(path, variant: null);
            WeightSet folderWeights = AddWeights(ModelComponent.Vae, file, isIndex ? SafetensorsIndex.OpenShards(file) : [SafetensorsFile.Open(file)]);
            Vae = Fitted(folderConfig, DiffusersLayout.Vae(folderConfig), folderWeights, configPath);
            return;
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such VAE folder or file", path);
        }
        SafetensorsFile opened = SafetensorsFile.Open(path);
        _files.Add(opened);
        var weights = new WeightSet(path, [opened]);
        _weights.Add(ModelComponent.Vae, weights);
        if (HasAnyPrefix(opened, DiffusersVaePrefixes))
        {
            AddDiffusersVaeTensors(opened, weights);
        }
        else
        {
            AddOriginalVaeTensors(opened, weights);
        }
        var guesses = new List<InferredSetting>(InferredSettings);
        VaeConfig config = given?.Vae ?? ConfigInference.Vae(weights, guesses);
        Vae = Fitted(config, DiffusersLayout.Vae(config), weights, given?.Vae is null ? path : given.ConfigPath(ModelComponent.Vae));
        InferredSettings = guesses;
    }

    /// <summary>diffusers names as they are (legacy attention names renewed), training leftovers skipped.</summary>
    private static void AddDiffusersVaeTensors(SafetensorsFile file, WeightSet weights)
    {
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (VaeKey(tensor.Name, wholeCheckpoint: false) is not null)
            {
                weights.Add(new TensorEntry(SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(tensor.Name), tensor.Shape, file, tensor));
            }
        }
    }

    /// <summary>
    /// Maps the original (ldm) names: a whole checkpoint's first_stage_model.* keys (its other components and buffers
    /// are skipped), or a standalone VAE's bare keys read as if under that prefix.
    /// </summary>
    private static void AddOriginalVaeTensors(SafetensorsFile file, WeightSet weights)
    {
        bool whole = HasAnyPrefix(file, [VaeKeyMapping.Prefix]);
        var keys = new List<string>(file.Tensors.Count);
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (VaeKey(tensor.Name, whole) is { } key)
            {
                keys.Add(VaeKeyMapping.Prefix + key);
            }
        }
        if (!keys.Exists(key => key.StartsWith(VaeKeyMapping.Prefix + "encoder.", StringComparison.Ordinal)))
        {
            throw new InvalidFileException(file.Path, "the file holds no VAE tensors (encoder.*, decoder.*, quant_conv.*, post_quant_conv.*, or diffusers' encoder.down_blocks.*)");
        }
        VaeKeyMapping mapping = VaeKeyMapping.Create(keys, file.Path)!;
        var unknown = new List<string>();
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (VaeKey(tensor.Name, whole) is not { } key)
            {
                continue;
            }
            if (mapping.Map(key, out bool squeeze) is { } name)
            {
                weights.Add(new TensorEntry(name, squeeze ? SqueezeTrailing1x1(file.Path, tensor) : tensor.Shape, file, tensor));
            }
            else
            {
                unknown.Add(tensor.Name);
            }
        }
        if (unknown.Count > 0)
        {
            throw new InvalidFileException(file.Path,
                $"{unknown.Count} tensor(s) are no VAE tensors, e.g. '{string.Join("', '", unknown.Take(3))}': is this a VAE file?");
        }
    }

    /// <summary>A tensor's VAE key without prefix, or null for what is skipped: training leftovers, and in a whole
    /// checkpoint everything outside first_stage_model.</summary>
    private static string? VaeKey(string name, bool wholeCheckpoint)
    {
        string key = name;
        if (wholeCheckpoint)
        {
            if (!name.StartsWith(VaeKeyMapping.Prefix, StringComparison.Ordinal))
            {
                return null;
            }
            key = name[VaeKeyMapping.Prefix.Length..];
        }
        foreach (string prefix in VaeLeftoverPrefixes)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                return null;
            }
        }
        return key;
    }

    private static bool HasAnyPrefix(SafetensorsFile file, string[] prefixes)
    {
        foreach (TensorInfo tensor in file.Tensors)
        {
            foreach (string prefix in prefixes)
            {
                if (tensor.Name.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }
        return false;
    }
}
