using Sd.Engine.Pipelines;
using Sd.Engine.Text;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s <c>&lt;lora:name:0.8&gt;</c> prompt tags, read as AUTOMATIC1111 reads them (not in the plain
/// syntax, which keeps them as text): with <c>--lora-dir DIR</c> each names DIR's <c>name.safetensors</c> (in a
/// subfolder too, as A1111 looks through its Lora folder) and merges at its multipliers like a <c>--lora</c>; without
/// it they are taken out and not applied, with a warning, as are tags of kinds Sd does not have (hypernet, ...).
/// </summary>
internal static class PromptLoras
{
    /// <summary>The prompt without its tags, and the LoRAs they name.</summary>
    public static (string Prompt, LoraSpec[] Loras) Resolve(CommandLine line, string prompt, PromptSyntax syntax)
    {
        string? directory = line.Get("--lora-dir");
        if (syntax == PromptSyntax.Plain)
        {
            return directory is null ? (prompt, [])
                : throw new UsageException($"{line.Command}: --lora-dir reads the prompt's <lora:...> tags, which --prompt-syntax plain keeps as text");
        }
        string text = ExtraNetworks.Strip(prompt, out IReadOnlyList<ExtraNetworkTag> tags);
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new UsageException($"{line.Command}: --lora-dir {directory} is not a folder");
        }
        var loras = new List<LoraSpec>();
        foreach (ExtraNetworkTag tag in tags)
        {
            if (tag.Kind is not ("lora" or "lyco"))
            {
                Console.Error.WriteLine($"sd {line.Command}: warning: {tag} was taken out of the prompt: Sd has no '{tag.Kind}' networks");
                continue;
            }
            LoraTag lora = ExtraNetworks.LoraOf(tag);
            if (directory is null)
            {
                Console.Error.WriteLine($"sd {line.Command}: warning: {tag} was taken out of the prompt and not applied: give --lora-dir, the folder of {lora.Name}.safetensors");
                continue;
            }
            loras.Add(new LoraSpec(Find(line, directory, lora.Name, tag), lora.UNetScale) { TextEncoderScale = lora.TextEncoderScale });
        }
        return (text, loras.ToArray());
    }

    private static string Find(CommandLine line, string directory, string name, ExtraNetworkTag tag)
    {
        if (name is "." or ".." || name.AsSpan().IndexOfAny(['/', '\\', '*', '?', '\0']) >= 0)
        {
            throw new UsageException($"{line.Command}: {tag} names '{name}', which is not a file name");
        }
        string[] found = Directory.GetFiles(directory, name + ".safetensors", new EnumerationOptions
        {
            RecurseSubdirectories = true,
            MatchCasing = MatchCasing.CaseSensitive,
            MatchType = MatchType.Simple,
            IgnoreInaccessible = true,
        });
        return found.Length switch
        {
            1 => found[0],
            0 => throw new UsageException($"{line.Command}: {tag}: no {name}.safetensors in --lora-dir {directory} or its subfolders"),
            _ => throw new UsageException($"{line.Command}: {tag}: --lora-dir {directory} holds {found.Length} files of that name ({string.Join(", ", found.Order(StringComparer.Ordinal))}); keep one"),
        };
    }
}
