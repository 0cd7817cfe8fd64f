using Sd.Loaders;

namespace Sd.Cli.Commands;

/// <summary>
/// The options every model command shares: --model, --variant, --tokenizer, --config (configs for a single-file
/// checkpoint, see <see cref="ModelOpenOptions.ConfigDirectory"/>), --threads, --log-level.
/// </summary>
internal static class ModelOptions
{
    public static readonly string[] Flags = ["--model", "--variant", "--tokenizer", "--config", "--threads", "--log-level"];

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
    };

    /// <summary>Value flags of a command: the shared ones plus its own.</summary>
    public static string[] With(params string[] own) => [.. Flags, .. own];
}
