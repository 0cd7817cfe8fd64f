using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Config;

namespace Sd.Cli.Commands;

/// <summary>
/// The options every model command shares: --model, --variant, --tokenizer, --config (configs for a single-file
/// checkpoint, see <see cref="ModelOpenOptions.ConfigDirectory"/>), --vae (another VAE, see
/// <see cref="ModelOpenOptions.VaePath"/>), --threads, --log-level.
/// </summary>
internal static class ModelOptions
{
    public static readonly string[] Flags = ["--model", "--variant", "--tokenizer", "--config", "--vae", "--threads", "--log-level"];

    /// <summary>
    /// Applies --threads (before anything starts the worker pool) and returns the logger --log-level asks for.
    /// </summary>
    public static Microsoft.Extensions.Logging.ILogger Setup(CommandLine line)
    {
        if (line.Has("--threads"))
        {
            int threads = line.GetInt("--threads", 0);
            if (threads < 1 || threads > Sd.Kernels.Threading.WorkerPool.MaxThreads)
            {
                throw new UsageException($"{line.Command}: --threads must be in [1, {Sd.Kernels.Threading.WorkerPool.MaxThreads}], got {threads}");
            }
            Sd.Kernels.Threading.WorkerPool.ConfigureShared(threads);
        }
        return new StderrLogger(StderrLogger.ParseLevel(line.Get("--log-level"), line.Command));
    }

    public static ModelSource Open(CommandLine line)
    {
        Setup(line);
        return ModelSource.Open(line.Require("--model"), OpenOptions(line));
    }

    public static ModelOpenOptions OpenOptions(CommandLine line) => new()
    {
        Variant = line.Get("--variant"),
        TokenizerDirectory = line.Get("--tokenizer"),
        ConfigDirectory = line.Get("--config"),
        VaePath = line.Get("--vae"),
    };

    /// <summary>
    /// --prompt-syntax plain|chunked|weighted: how prompts become token rows (<see cref="Engine.Text.PromptSyntax"/>);
    /// weighted, AUTOMATIC1111's, when absent. --chunked, where a command has it, is --prompt-syntax chunked.
    /// </summary>
    public static PromptSyntax PromptSyntax(CommandLine line)
    {
        string? given = line.Get("--prompt-syntax");
        if (line.Has("--chunked"))
        {
            return given is null or "chunked" ? Engine.Text.PromptSyntax.Chunked
                : throw new UsageException($"{line.Command}: --chunked is --prompt-syntax chunked; it contradicts --prompt-syntax {given}");
        }
        return given switch
        {
            null or "weighted" => Engine.Text.PromptSyntax.Weighted,
            "chunked" => Engine.Text.PromptSyntax.Chunked,
            "plain" => Engine.Text.PromptSyntax.Plain,
            _ => throw new UsageException($"{line.Command}: --prompt-syntax must be plain, chunked or weighted, got '{given}'"),
        };
    }

    /// <summary>The --embedding values: a file, then optionally ':' and the token that calls it up ("neg.safetensors:bad-hands").</summary>
    public static EmbeddingSpec[] Embeddings(CommandLine line)
    {
        IReadOnlyList<string> values = line.GetAll("--embedding");
        var specs = new EmbeddingSpec[values.Count];
        for (int i = 0; i < specs.Length; i++)
        {
            (string path, string? token) = FileAndSuffix(line, "--embedding", values[i], "token");
            specs[i] = new EmbeddingSpec(path, token);
        }
        return specs;
    }

    /// <summary>
    /// A FILE[:SUFFIX] value: split at the first ':' before which an existing file ends, so a value naming a file as a
    /// whole is that file, a file name may hold ':', and so may the suffix; no split when no such file exists.
    /// </summary>
    public static (string Path, string? Suffix) FileAndSuffix(CommandLine line, string flag, string value, string suffixName)
    {
        if (value.Length == 0)
        {
            throw new UsageException($"{line.Command}: {flag} needs a file");
        }
        for (int colon = value.IndexOf(':'); colon > 0 && !File.Exists(value); colon = value.IndexOf(':', colon + 1))
        {
            if (File.Exists(value[..colon]))
            {
                return colon + 1 < value.Length
                    ? (value[..colon], value[(colon + 1)..])
                    : throw new UsageException($"{line.Command}: {flag} {value}: the {suffixName} after ':' is empty");
            }
        }
        int last = value.LastIndexOf(':');
        if (last > 0 && !File.Exists(value))
        {
            // Say which file was meant instead of failing later on a name with the suffix in it.
            throw new UsageException($"{line.Command}: {flag} {value}: no such file, and '{value[..last]}' is none to take a {suffixName} after ':' either");
        }
        return (value, null);
    }

    /// <summary>The textual inversions of --embedding for <paramref name="model"/>'s text encoder; none without the flag.</summary>
    public static AddedTokens AddedTokens(CommandLine line, ModelSource model)
    {
        EmbeddingSpec[] specs = Embeddings(line);
        if (specs.Length == 0)
        {
            return Engine.Text.AddedTokens.None;
        }
        ClipTextConfig config = model.TextEncoder ?? throw new InvalidFileException(model.Path, "the model has no text encoder for --embedding");
        return Engine.Text.AddedTokens.Read(specs, config);
    }

    /// <summary>Value flags of a command: the shared ones plus its own.</summary>
    public static string[] With(params string[] own) => [.. Flags, .. own];
}
