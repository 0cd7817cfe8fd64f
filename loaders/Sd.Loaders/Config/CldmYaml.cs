using System.Globalization;
using System.Text;
using Sd.Loaders.IO;

namespace Sd.Loaders.Config;

/// <summary>
/// The settings an original-format ControlNet's yaml (<c>control_v11e_sd15_shuffle.yaml</c> beside
/// <c>control_v11e_sd15_shuffle.safetensors</c>, as lllyasviel ships them and A1111's ControlNet extension reads them)
/// holds that its tensors do not show: the attention heads and global average pooling, from
/// <c>model.params.control_stage_config.params</c>. Only the block-map subset of YAML these files use is read:
/// <c>key: value</c> lines nested by indentation, comments, and block-list items (skipped).
/// </summary>
/// Reference: lllyasviel/ControlNet-v1-1-nightly models/*.yaml; cldm/cldm.py ControlNet.__init__ (num_heads,
/// num_head_channels, global_average_pooling); sd-webui-controlnet's reading of control_stage_config.
internal sealed record CldmYaml(string Path, int? NumHeads, int? NumHeadChannels, bool GlobalAveragePooling)
{
    /// <summary>Heads per block of <paramref name="channels"/> channels: channels / num_head_channels, else num_heads; null if neither is set.</summary>
    public int[]? Heads(int[] channels)
    {
        var heads = new int[channels.Length];
        for (int i = 0; i < heads.Length; i++)
        {
            if (NumHeadChannels is { } perHead)
            {
                if (channels[i] % perHead != 0)
                    throw new InvalidFileException(Path, $"num_head_channels {perHead} does not divide block {i}'s {channels[i]} channels");
                heads[i] = channels[i] / perHead;
            }
            else if (NumHeads is { } count)
            {
                heads[i] = count;
            }
            else
            {
                return null;
            }
        }
        return heads;
    }

    public static CldmYaml Read(string path)
    {
        byte[] bytes = InputFile.ReadAll(path, "ControlNet yaml", maxBytes: 1024 * 1024);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes).TrimStart('\uFEFF'); // a byte-order mark, as PyYAML skips it
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidFileException(path, "not UTF-8 text");
        }
        (Dictionary<string, string> values, bool found) = ControlStage(path, text);
        if (!found)
        {
            throw new InvalidFileException(path, "no model.params.control_stage_config.params: not a ControlNet's yaml");
        }
        return new CldmYaml(path, Positive(path, values, "num_heads"), Positive(path, values, "num_head_channels"),
            Bool(path, values, "global_average_pooling"));
    }

    /// <summary>An int setting; -1 (cldm's "unset") and absence are null, anything else must be a positive int.</summary>
    private static int? Positive(string path, Dictionary<string, string> values, string key)
    {
        if (!values.TryGetValue(key, out string? text) || text == "-1")
        {
            return null;
        }
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value is > 0 and <= 1 << 16
            ? value
            : throw new InvalidFileException(path, $"{key} is '{text}', expected a positive whole number or -1");
    }

    /// <summary>A yes/no setting as YAML 1.1 writes one (True, false...); false when absent, cldm's default.</summary>
    private static bool Bool(string path, Dictionary<string, string> values, string key)
    {
        if (!values.TryGetValue(key, out string? text))
        {
            return false;
        }
        return text.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw new InvalidFileException(path, $"{key} is '{text}', expected True or False"),
        };
    }


    /// <summary>The keys of model.params.control_stage_config.params, as nested by indentation.</summary>
    private static readonly string[] SectionPath = ["model", "params", "control_stage_config", "params"];

    /// <summary>The longest key and the deepest nesting read; real files have keys of a few words and 5 levels.</summary>
    private const int MaxKey = 256, MaxDepth = 64;

    /// <summary>
    /// The <c>key: value</c> pairs directly in model.params.control_stage_config.params, and whether that map is
    /// there. A key with no value opens a map whose keys are indented deeper; a list item (<c>- ...</c>) and what is
    /// nested in it are skipped. Tabs, lines without a key, over-long keys, too deep nesting and keys given twice in
    /// the section are refused, naming the line.
    /// </summary>
    private static (Dictionary<string, string> Values, bool Found) ControlStage(string path, string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        bool found = false;
        var open = new List<(int Indent, string? Key)>(); // a null key is a list item, whose contents are skipped
        string[] lines = text.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            string line = StripComment(lines[n].TrimEnd('\r'));
            string content = line.TrimStart(' ');
            if (content.TrimEnd().Length == 0 || content.TrimEnd() == "---")
            {
                continue;
            }
            if (content[0] == '\t')
            {
                throw new InvalidFileException(path, $"line {n + 1} is indented with a tab; YAML indents with spaces");
            }
            int indent = line.Length - content.Length;
            while (open.Count > 0 && open[^1].Indent >= indent) open.RemoveAt(open.Count - 1);
            if (content.StartsWith('-'))
            {
                open.Add((indent, null)); // e.g. ddconfig's ch_mult items, which no ControlNet setting is
                continue;
            }
            if (open.Count > 0 && open[^1].Key is null)
            {
                continue; // inside a list item
            }
            int colon = content.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new InvalidFileException(path, $"line {n + 1} ('{Shorten(content)}') is not 'key: value'");
            }
            string key = content[..colon].Trim(), value = content[(colon + 1)..].Trim();
            if (key.Length > MaxKey || open.Count >= MaxDepth)
            {
                throw new InvalidFileException(path, $"line {n + 1}: a key of {key.Length} characters at depth {open.Count + 1}; " +
                    $"expected at most {MaxKey} and {MaxDepth}");
            }
            if (value.Length == 0)
            {
                open.Add((indent, key));
                found |= IsSection(open);
            }
            else if (IsSection(open) && !values.TryAdd(key, Unquote(value)))
            {
                throw new InvalidFileException(path, $"line {n + 1}: {string.Join('.', SectionPath)}.{key} is given twice");
            }
        }
        return (values, found);
    }

    private static bool IsSection(List<(int Indent, string? Key)> open)
    {
        if (open.Count != SectionPath.Length) return false;
        for (int i = 0; i < open.Count; i++)
        {
            if (open[i].Key != SectionPath[i]) return false;
        }
        return true;
    }

    /// <summary>The line before a '#' that starts a comment (at the start or after a space or tab, outside quotes).</summary>
    private static string StripComment(string line)
    {
        char quote = '\0';
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
            }
            else if (c is '"' or '\'')
            {
                quote = c;
            }
            else if (c == '#' && (i == 0 || line[i - 1] is ' ' or '\t'))
            {
                return line[..i];
            }
        }
        return line;
    }

    private static string Unquote(string value) =>
        value.Length >= 2 && (value[0] is '"' or '\'') && value[^1] == value[0] ? value[1..^1] : value;

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";
}
