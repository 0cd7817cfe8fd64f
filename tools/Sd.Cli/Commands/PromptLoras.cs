using Sd.Engine.Pipelines;
using Sd.Engine.Text;
using Sd.Loaders.Safetensors;

namespace Sd.Cli.Commands;

/// <summary>
/// <c>sd generate</c>'s <c>&lt;lora:name:0.8&gt;</c> prompt tags, read as AUTOMATIC1111 reads them (not in the plain
/// syntax, which keeps them as text): with <c>--lora-dir DIR</c> each names DIR's <c>name.safetensors</c> (in a
/// subfolder too, as A1111 looks through its Lora folder) and merges at its multipliers like a <c>--lora</c>; without
/// it they are not applied, with a warning, as are tags of kinds Sd does not have (hypernet, ...). The negative
/// prompt's tags are not read, as in A1111.
/// </summary>
internal static class PromptLoras
{
    /// <summary>How deep --lora-dir is searched.</summary>
    private const int MaxDepth = 16;

    /// <summary>
    /// The LoRAs the prompt's tags name. The prompt itself goes to the pipeline as given: its tokenizer takes the
    /// tags out the same way (<see cref="ExtraNetworks.Strip"/>), once.
    /// </summary>
    public static LoraSpec[] Resolve(CommandLine line, string prompt, PromptSyntax syntax)
    {
        string? directory = line.Get("--lora-dir");
        if (syntax == PromptSyntax.Plain)
        {
            return directory is null ? []
                : throw new UsageException($"{line.Command}: --lora-dir reads the prompt's <lora:...> tags, which --prompt-syntax plain keeps as text");
        }
        ExtraNetworks.Strip(PromptComments.Strip(prompt), out IReadOnlyList<ExtraNetworkTag> tags); // a tag in a comment is none
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new UsageException($"{line.Command}: --lora-dir {directory} is not a folder");
        }
        Dictionary<string, List<string>>? files = null, aliases = null;
        var loras = new List<LoraSpec>();
        foreach (ExtraNetworkTag tag in tags)
        {
            if (tag.Kind is not ("lora" or "lyco"))
            {
                Console.Error.WriteLine($"sd {line.Command}: warning: {tag} was taken out of the prompt: Sd has no '{tag.Kind}' networks");
                continue;
            }
            if (directory is null)
            {
                Console.Error.WriteLine($"sd {line.Command}: warning: {tag} was taken out of the prompt and not applied: give --lora-dir, the folder of its .safetensors file");
                continue;
            }
            LoraTag lora;
            try
            {
                lora = ExtraNetworks.LoraOf(tag);
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"{line.Command}: --prompt: {Program.Describe(e)}");
            }
            files ??= SafetensorsFiles(directory);
            loras.Add(new LoraSpec(Find(line, directory, files, ref aliases, lora.Name, tag), lora.UNetScale) { TextEncoderScale = lora.TextEncoderScale });
        }
        return loras.ToArray();
    }

    /// <summary>
    /// Every .safetensors file (the extension in any case, as A1111 matches it) under <paramref name="directory"/>, by
    /// name without the extension; hidden ones too. The depth is bounded: directory links are followed, and a link
    /// back up would otherwise make the walk endless.
    /// </summary>
    private static Dictionary<string, List<string>> SafetensorsFiles(string directory)
    {
        var files = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0, MaxRecursionDepth = MaxDepth };
        foreach (string path in Directory.EnumerateFiles(directory, "*", options))
        {
            if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            {
                string name = Path.GetFileName(path)[..^".safetensors".Length];
                if (!files.TryGetValue(name, out List<string>? paths)) files[name] = paths = [];
                paths.Add(path);
            }
        }
        return files;
    }

    private static string Find(CommandLine line, string directory, Dictionary<string, List<string>> files,
        ref Dictionary<string, List<string>>? aliases, string name, ExtraNetworkTag tag)
    {
        if (name is "." or ".." || name.AsSpan().IndexOfAny(['/', '\\', '\0']) >= 0)
        {
            throw new UsageException($"{line.Command}: {tag} names '{name}', which is not a file name");
        }
        List<string> found = files.GetValueOrDefault(name) ?? (aliases ??= Aliases(line, files)).GetValueOrDefault(name) ?? [];
        return found.Count switch
        {
            1 => found[0],
            0 => throw new UsageException($"{line.Command}: {tag}: no {name}.safetensors in --lora-dir {directory} or its subfolders (up to {MaxDepth} deep), and no file there has the alias {name} (ss_output_name)"),
            _ => throw new UsageException($"{line.Command}: {tag}: --lora-dir {directory} holds {found.Count} files of that name or alias ({string.Join(", ", found.Order(StringComparer.Ordinal))}); keep one"),
        };
    }

    /// <summary>
    /// Every file's kohya alias (its ss_output_name, the name it was trained under): A1111 finds a LoRA by this too,
    /// after the file name. Read once, when a tag first names no file; a file that cannot be read is named in a warning.
    /// </summary>
    private static Dictionary<string, List<string>> Aliases(CommandLine line, Dictionary<string, List<string>> files)
    {
        var aliases = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (List<string> paths in files.Values)
        {
            foreach (string path in paths)
            {
                try
                {
                    using SafetensorsFile file = SafetensorsFile.Open(path);
                    if (file.Metadata.TryGetValue("ss_output_name", out string? alias))
                    {
                        if (!aliases.TryGetValue(alias, out List<string>? named)) aliases[alias] = named = [];
                        named.Add(path);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"sd {line.Command}: warning: --lora-dir: {path} was passed over: {Program.Describe(e)}");
                }
            }
        }
        return aliases;
    }
}
