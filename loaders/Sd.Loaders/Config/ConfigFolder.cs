using Sd.Loaders.Checkpoints;

namespace Sd.Loaders.Config;

/// <summary>
/// The configs given for a single-file checkpoint, as diffusers' <c>from_single_file(config=...)</c> takes them: a
/// folder in the diffusers layout with whichever of unet/config.json, vae/config.json, text_encoder/config.json,
/// scheduler/scheduler_config.json and tokenizer/ the user has (model_index.json is not needed). They replace what
/// <see cref="ConfigInference"/> would assume, notably the head counts a single file does not store.
/// </summary>
public sealed record ConfigFolder
{
    public required string Root { get; init; }
    public UNetConfig? UNet { get; init; }
    public VaeConfig? Vae { get; init; }
    public ClipTextConfig? TextEncoder { get; init; }
    public SchedulerConfig? Scheduler { get; init; }
    public string? TokenizerDirectory { get; init; }

    public static ConfigFolder Load(string root)
    {
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"{root}: config folder not found");
        }
        string? Existing(string folder, string file)
        {
            string path = Path.Combine(root, folder, file);
            return File.Exists(path) ? path : null;
        }
        string? unet = Existing("unet", "config.json");
        string? vae = Existing("vae", "config.json");
        string? text = Existing("text_encoder", "config.json");
        string? scheduler = Existing("scheduler", "scheduler_config.json");
        string tokenizer = Path.Combine(root, "tokenizer");
        var folder = new ConfigFolder
        {
            Root = root,
            UNet = unet is null ? null : UNetConfig.Load(unet),
            Vae = vae is null ? null : VaeConfig.Load(vae),
            TextEncoder = text is null ? null : ClipTextConfig.Load(text),
            Scheduler = scheduler is null ? null : SchedulerConfig.Load(scheduler),
            TokenizerDirectory = Directory.Exists(tokenizer) ? tokenizer : null,
        };
        // A folder with none of them is most likely the wrong folder (e.g. unet/ itself): refuse rather than
        // silently fall back to the guesses the user meant to replace.
        if (folder is { UNet: null, Vae: null, TextEncoder: null, Scheduler: null, TokenizerDirectory: null })
        {
            throw new InvalidFileException(root,
                "not a diffusers config folder: none of unet/config.json, vae/config.json, text_encoder/config.json, scheduler/scheduler_config.json or tokenizer/ is there");
        }
        return folder;
    }

    /// <summary>Where a component's config.json is (for messages about it).</summary>
    public string ConfigPath(ModelComponent component) => Path.Combine(Root, ModelSource.FolderName(component), "config.json");
}
