using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Embeddings;

namespace Sd.Engine.Text;

/// <summary>
/// A textual-inversion embedding to add: its .safetensors file and the word that calls it up in prompts; null takes
/// the file's own (its key in diffusers' files, its file name in A1111's, see <see cref="TextualInversionFile"/>).
/// </summary>
public sealed record EmbeddingSpec(string Path, string? Token = null);

/// <summary>A word added to the vocabulary: it stands for <paramref name="Count"/> ids from <paramref name="FirstId"/> on.</summary>
/// <param name="Source">The file its vectors came from, named in errors.</param>
public sealed record AddedToken(string Content, int FirstId, int Count, string Source);

/// <summary>
/// Textual-inversion embeddings appended to a text encoder's token embedding table: the vectors of the first get ids
/// vocab_size, vocab_size + 1, ..., then the next one's, as diffusers' load_textual_inversion grows the table
/// (resize_token_embeddings, then one row per vector). The tokenizer (<see cref="ClipTokenizer.WithAddedTokens"/>) turns
/// each word into its ids and <see cref="ClipTextModel"/> looks the rows up.
/// </summary>
public sealed class AddedTokens
{
    private readonly float[] _rows;

    private AddedTokens(IReadOnlyList<AddedToken> tokens, int firstId, int width, float[] rows)
    {
        Tokens = tokens;
        FirstId = firstId;
        Width = width;
        _rows = rows;
    }

    /// <summary>No added tokens.</summary>
    public static AddedTokens None { get; } = new([], 0, 0, []);

    public IReadOnlyList<AddedToken> Tokens { get; }

    /// <summary>The first added id: the text encoder's vocab_size.</summary>
    public int FirstId { get; }

    /// <summary>How many ids (vectors) were added, over all tokens.</summary>
    public int Count => Width == 0 ? 0 : _rows.Length / Width;

    public int Width { get; }

    /// <summary>[Count, Width]: the row of id <see cref="FirstId"/> + i is row i.</summary>
    public ReadOnlySpan<float> Rows => _rows;

    /// <summary>Reads the embeddings of <paramref name="specs"/> and appends them in order (<see cref="Create"/>).</summary>
    public static AddedTokens Read(IReadOnlyList<EmbeddingSpec> specs, ClipTextConfig config)
    {
        ArgumentNullException.ThrowIfNull(specs);
        var inversions = new TextualInversion[specs.Count];
        for (int i = 0; i < inversions.Length; i++)
        {
            inversions[i] = TextualInversionFile.Read(specs[i].Path, specs[i].Token);
        }
        return Create(inversions, config);
    }

    /// <summary>Appends <paramref name="inversions"/> in order to a text encoder of <paramref name="config"/>.</summary>
    /// <exception cref="InvalidFileException">An embedding's width is not the text encoder's hidden size, or it is
    /// malformed (no token, no vectors, values that are not Count x Width finite numbers).</exception>
    public static AddedTokens Create(IReadOnlyList<TextualInversion> inversions, ClipTextConfig config)
    {
        ArgumentNullException.ThrowIfNull(inversions);
        ArgumentNullException.ThrowIfNull(config);
        if (inversions.Count == 0)
        {
            return None;
        }
        var tokens = new AddedToken[inversions.Count];
        long total = 0;
        for (int i = 0; i < inversions.Count; i++)
        {
            TextualInversion inversion = inversions[i];
            Check(inversion);
            if (inversion.Width != config.HiddenSize)
            {
                throw new InvalidFileException(inversion.Path,
                    $"textual inversion '{inversion.Token}' has vectors of width {inversion.Width}; this model's text encoder takes {config.HiddenSize} (SD 1.x 768, SD 2.x 1024): the embedding was made for another model");
            }
            tokens[i] = new AddedToken(inversion.Token, checked((int)(config.VocabSize + total)), inversion.Count, inversion.Path);
            total += inversion.Count;
        }
        var rows = new float[checked(total * config.HiddenSize)];
        long offset = 0;
        foreach (TextualInversion inversion in inversions)
        {
            inversion.Vectors.CopyTo(rows, offset);
            offset += inversion.Vectors.Length;
        }
        return new AddedTokens(tokens, config.VocabSize, config.HiddenSize, rows);
    }

    /// <summary>What <see cref="TextualInversionFile.Read"/> guarantees, for embeddings made in code.</summary>
    private static void Check(TextualInversion inversion)
    {
        string? problem = string.IsNullOrWhiteSpace(inversion.Token) ? "has an empty token"
            : inversion.Count < 1 || inversion.Width < 1 ? $"has {inversion.Count} vectors of width {inversion.Width}"
            : inversion.Vectors.LongLength != (long)inversion.Count * inversion.Width ? $"holds {inversion.Vectors.Length} values for {inversion.Count} vectors of width {inversion.Width}"
            : Array.Exists(inversion.Vectors, value => !float.IsFinite(value)) ? "holds Inf or NaN"
            : null;
        if (problem is not null)
        {
            throw new InvalidFileException(inversion.Path, $"textual inversion '{inversion.Token}' {problem}");
        }
    }
}
