using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders;

/// <summary>A separate VAE (<see cref="ModelOpenOptions.VaePath"/>) in place of the model's own.</summary>
public sealed partial class ModelSource
{
    // Training leftovers a VAE checkpoint may carry: the GAN discriminator and LPIPS weights, the EMA bookkeeping.
    private static readonly string[] VaeLeftoverPrefixes = ["loss.", "model_ema."];

    // The other components of a whole checkpoint given as a VAE: only its VAE is taken.
    private static readonly string[] OtherComponentPrefixes = ["model.diffusion_model.", "cond_stage_model.", "conditioner."];

    /// <summary>
    /// Replaces the VAE with the one at <paramref name="path"/>: a diffusers VAE folder (config.json and its weights,
    /// the variant rule as for a model's vae/), or one .safetensors file with the VAE's tensors in the original
    /// naming (encoder.down.0.block.0..., as vae-ft-mse-840000-ema-pruned.safetensors; a whole checkpoint's
    /// first_stage_model.* too) or in diffusers' (encoder.down_blocks.0.resnets.0...). A file's config is the config
    /// folder's vae/config.json when <paramref name="given"/> has one (it must fit), else inferred from its shapes
    /// (<see cref="InferredSettings"/> lists the guesses). Anything in the file that is no VAE tensor is refused, so a
    /// UNet or LoRA given by mistake fails by name.
    /// </summary>
    private void ReplaceVae(string path, ConfigFolder? given, List<InferredSetting> guesses)
    {
        _weights.Remove(ModelComponent.Vae);
        if (Directory.Exists(path))
        {
            string configPath = System.IO.Path.Combine(path, "config.json");
            if (!File.Exists(configPath))
            {
                throw new InvalidFileException(path, "not a diffusers VAE folder: config.json is missing (for a model folder, give its vae/ folder)");
            }
            VaeConfig vae = VaeConfig.Load(configPath);
            (string file, bool isIndex) = ComponentWeightFiles.Resolve(path, _options.Variant);
            WeightSet folderWeights = AddWeights(ModelComponent.Vae, file, isIndex ? SafetensorsIndex.OpenShards(file) : [SafetensorsFile.Open(file)]);
            Vae = Fitted(vae, DiffusersLayout.Vae(vae), folderWeights, configPath);
            return;
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such VAE folder or file", path);
        }
        PickleGuard.RefuseByExtension(path);
        SafetensorsFile opened = SafetensorsFile.Open(path);
        _files.Add(opened);
        var weights = new WeightSet(path, [opened]);
        _weights.Add(ModelComponent.Vae, weights);
        if (HasAnyPrefix(opened, ["encoder.down_blocks.", "decoder.up_blocks."]))
        {
            AddDiffusersVaeTensors(opened, weights);
        }
        else
        {
            AddOriginalVaeTensors(opened, weights);
        }
        Vae = given?.Vae is { } config
            ? Fitted(config, DiffusersLayout.Vae(config), weights, given.ConfigPath(ModelComponent.Vae))
            : ConfigInference.Vae(weights, guesses);
    }

    private static void AddDiffusersVaeTensors(SafetensorsFile file, WeightSet weights)
    {
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (!IsLeftover(tensor.Name))
            {
                weights.Add(new TensorEntry(SingleFileKeyMapper.NormalizeLegacyVaeAttentionName(tensor.Name), tensor.Shape, file, tensor));
            }
        }
    }

    /// <summary>Maps the original (ldm) names, read as if under a checkpoint's first_stage_model. prefix.</summary>
    private static void AddOriginalVaeTensors(SafetensorsFile file, WeightSet weights)
    {
        var keys = new List<string>(file.Tensors.Count);
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (!IsLeftover(tensor.Name) && !HasPrefix(tensor.Name, OtherComponentPrefixes))
            {
                keys.Add(tensor.Name.StartsWith(VaeKeyMapping.Prefix, StringComparison.Ordinal) ? tensor.Name : VaeKeyMapping.Prefix + tensor.Name);
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
            if (IsLeftover(tensor.Name) || HasPrefix(tensor.Name, OtherComponentPrefixes))
            {
                continue;
            }
            string key = tensor.Name.StartsWith(VaeKeyMapping.Prefix, StringComparison.Ordinal) ? tensor.Name[VaeKeyMapping.Prefix.Length..] : tensor.Name;
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

    private static bool IsLeftover(string name) => HasPrefix(name, VaeLeftoverPrefixes);

    private static bool HasPrefix(string name, string[] prefixes)
    {
        foreach (string prefix in prefixes)
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    private static bool HasAnyPrefix(SafetensorsFile file, string[] prefixes)
    {
        foreach (TensorInfo tensor in file.Tensors)
        {
            if (HasPrefix(tensor.Name, prefixes))
            {
                return true;
            }
        }
        return false;
    }
}
