using Sd.Loaders;

namespace Sd.Cli.Commands;

/// <summary>The options every model command shares: --model, --variant, --tokenizer.</summary>
internal static class ModelOptions
{
    public static readonly string[] Flags = ["--model", "--variant", "--tokenizer"];

    public static ModelSource Open(CommandLine line) =>
        ModelSource.Open(line.Require("--model"), new ModelOpenOptions
        {
            Variant = line.Get("--variant"),
            TokenizerDirectory = line.Get("--tokenizer"),
        });

    /// <summary>Value flags of a command: the shared ones plus its own.</summary>
    public static string[] With(params string[] own) => [.. Flags, .. own];
}
