using System.Text.Json;

namespace Sd.Loaders.Config;

/// <summary>
/// The files of a CLIP tokenizer folder (<c>vocab.json</c>, <c>merges.txt</c>) and the settings the SD pipeline
/// depends on from <c>tokenizer_config.json</c> / <c>special_tokens_map.json</c>. The pad token differs between
/// SD 1.x (<c>&lt;|endoftext|&gt;</c>) and SD 2.x (<c>!</c>).
/// </summary>
public sealed record TokenizerFiles
{
    public required string Directory { get; init; }
    public required string VocabPath { get; init; }
    public required string MergesPath { get; init; }
    public string BosToken { get; init; } = "<|startoftext|>";
    public string EosToken { get; init; } = "<|endoftext|>";
    public string UnkToken { get; init; } = "<|endoftext|>";
    public string PadToken { get; init; } = "<|endoftext|>";
    public int ModelMaxLength { get; init; } = 77;

    /// <summary>The file <see cref="ModelMaxLength"/> was read from; null when no file gives it (CLIP's 77).</summary>
    public string? ModelMaxLengthSource { get; init; }
    public bool DoLowerCase { get; init; } = true;

    /// <summary>
    /// Throws unless the sequences this tokenizer pads to fit the text encoder's positions (each config is valid alone;
    /// only the pair can disagree). A null encoder (none in the model) fits.
    /// </summary>
    public void RequireFits(ClipTextConfig? encoder)
    {
        if (encoder != null && ModelMaxLength > encoder.MaxPositionEmbeddings)
        {
            throw new InvalidFileException(ModelMaxLengthSource ?? Directory,
                $"model_max_length {ModelMaxLength}{(ModelMaxLengthSource == null ? " (CLIP's default: no tokenizer file gives one)" : "")} exceeds the text encoder's {encoder.MaxPositionEmbeddings} positions (max_position_embeddings)");
        }
    }

    /// <summary>
    /// Reads a tokenizer folder. Missing vocab/merges are an error that says which file and that a tokenizer folder
    /// can be given explicitly (single-file checkpoints carry none).
    /// </summary>
    public static TokenizerFiles Load(string directory)
    {
        string vocab = Path.Combine(directory, "vocab.json");
        string merges = Path.Combine(directory, "merges.txt");
        foreach (string required in new[] { vocab, merges })
        {
            if (!File.Exists(required))
            {
                throw new FileNotFoundException(
                    $"{required}: tokenizer file not found; a CLIP tokenizer folder needs vocab.json and merges.txt (pass one with --tokenizer DIR)",
                    required);
            }
        }
        var files = new TokenizerFiles { Directory = directory, VocabPath = vocab, MergesPath = merges };
        // special_tokens_map.json first, tokenizer_config.json overrides: transformers gives the init kwargs
        // (tokenizer_config) precedence for the tokens it defines.
        foreach (string name in new[] { "special_tokens_map.json", "tokenizer_config.json" })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path))
            {
                files = files.With(JsonConfig.Load(path));
            }
        }
        return files;
    }

    private TokenizerFiles With(JsonConfig json)
    {
        int? maxLength = MaxLength(json);
        return this with
        {
            BosToken = Token(json, "bos_token") ?? BosToken,
            EosToken = Token(json, "eos_token") ?? EosToken,
            UnkToken = Token(json, "unk_token") ?? UnkToken,
            PadToken = Token(json, "pad_token") ?? PadToken,
            ModelMaxLength = maxLength ?? ModelMaxLength,
            ModelMaxLengthSource = maxLength is null ? ModelMaxLengthSource : json.Path,
            DoLowerCase = json.GetBool("do_lower_case", DoLowerCase),
        };
    }

    /// <summary>
    /// The file's model_max_length; null when it gives none or transformers' huge "unknown" sentinel (1e30), where
    /// the length stays as it was (SD tokenizers say 77).
    /// </summary>
    private static int? MaxLength(JsonConfig json)
    {
        if (json.GetRaw("model_max_length") is not { } value)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || number < 2)
        {
            throw json.Wrong("model_max_length", "a number >= 2", value);
        }
        return number > 4096 ? null : (int)number;
    }

    /// <summary>A special token is either a string or an AddedToken object with "content".</summary>
    private static string? Token(JsonConfig json, string key)
    {
        if (json.GetRaw(key) is not { } value)
        {
            return null;
        }
        // An empty special token would match nowhere in a prompt and cannot be split out of one.
        if (value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } token)
        {
            return token;
        }
        if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out JsonElement content)
            && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } contentToken)
        {
            return contentToken;
        }
        throw json.Wrong(key, "a non-empty string or an object with a non-empty string \"content\"", value);
    }
}
