using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Embeddings;

/// <summary>
/// A textual-inversion embedding: the prompt word that calls it up and its vectors, which take the place of that
/// word's token embeddings in the text encoder (one vector per token the word stands for).
/// </summary>
/// <param name="Path">The file it was read from, named in errors.</param>
/// <param name="Token">The word that calls it up in a prompt, matched exactly as written (case included).</param>
/// <param name="Vectors">[Count, Width] row-major, float32, every value finite.</param>
public sealed record TextualInversion(string Path, string Token, int Count, int Width, float[] Vectors);

/// <summary>
/// Reads textual-inversion embeddings for SD 1.x/2.x from .safetensors files, in the layouts they are shared in: one
/// tensor, [W] or [N, W]. Its key is the trigger word in diffusers' files (learned_embeds.safetensors holds
/// {"&lt;cat-toy&gt;": [768]}); A1111's and kohya's files name it "emb_params" and are called up by their file name
/// (EasyNegative.safetensors by "EasyNegative"), so for those the file name is the token. A token passed in replaces
/// either. SDXL's two-encoder files (clip_l + clip_g) are refused, and so are A1111's pickled .pt embeddings, as every
/// pickle is.
/// </summary>
public static class TextualInversionFile
{
    /// <summary>Far above any real embedding (they hold 1 to a few dozen vectors); bounds what a lying file costs.</summary>
    public const int MaxVectors = 1024;

    /// <summary>Wider than any CLIP text encoder (SD 1.x 768, SD 2.x 1024, SDXL's second 1280).</summary>
    public const int MaxWidth = 16384;

    /// <summary>Keys that name a layout instead of a word: such files are called up by their file name.</summary>
    private static readonly string[] GenericKeys = ["emb_params", "*", "string_to_param.*"];

    /// <param name="token">The trigger word; null takes the file's own (its key, or its file name for A1111 files).</param>
    public static TextualInversion Read(string path, string? token = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (token is not null && string.IsNullOrWhiteSpace(token))
        {
            throw new ArgumentException($"the token for textual inversion '{path}' is empty; a token is the word a prompt calls it up with", nameof(token));
        }
        using SafetensorsFile file = SafetensorsFile.Open(path);
        TensorInfo tensor = Single(file);
        (int count, int width) = Shape(file.Path, tensor);
        var vectors = new float[(long)count * width];
        file.ReadFloat32(tensor, vectors);
        int bad = Array.FindIndex(vectors, value => !float.IsFinite(value));
        if (bad >= 0)
        {
            throw new InvalidFileException(file.Path, $"textual inversion tensor '{tensor.Name}' holds {vectors[bad]} at vector {bad / width}, element {bad % width}; embeddings must be finite");
        }
        token ??= Array.IndexOf(GenericKeys, tensor.Name) >= 0 ? System.IO.Path.GetFileNameWithoutExtension(file.Path) : tensor.Name;
        if (string.IsNullOrWhiteSpace(token))
        {
            throw new InvalidFileException(file.Path, $"textual inversion tensor '{tensor.Name}' gives no usable token; pass one");
        }
        return new TextualInversion(file.Path, token, count, width, vectors);
    }

    private static TensorInfo Single(SafetensorsFile file)
    {
        if (file.TryGet("clip_l", out _) || file.TryGet("clip_g", out _))
        {
            throw new InvalidFileException(file.Path, "this is an SDXL textual inversion (clip_l and clip_g vectors); Sd runs SD 1.x/2.x, whose embeddings hold one tensor");
        }
        if (file.Tensors.Count != 1)
        {
            string names = string.Join(", ", file.Tensors.Take(5).Select(tensor => $"'{tensor.Name}'"));
            throw new InvalidFileException(file.Path, file.Tensors.Count == 0
                ? "the file holds no tensor; a textual inversion holds one ([vectors, width])"
                : $"the file holds {file.Tensors.Count} tensors ({names}{(file.Tensors.Count > 5 ? ", ..." : "")}); a textual inversion holds one ([vectors, width]) (a LoRA or a model is not an embedding)");
        }
        TensorInfo tensor = file.Tensors[0];
        if (!tensor.DType.IsFloatWeight())
        {
            throw new InvalidFileException(file.Path, $"textual inversion tensor '{tensor.Name}' has dtype {tensor.DType.Name()}; expected F32, F16 or BF16");
        }
        return tensor;
    }

    private static (int Count, int Width) Shape(string path, TensorInfo tensor)
    {
        long[] shape = tensor.Shape;
        (long count, long width) = shape.Length switch
        {
            1 => (1L, shape[0]),
            2 => (shape[0], shape[1]),
            _ => (0L, 0L),
        };
        if (count is < 1 or > MaxVectors || width is < 1 or > MaxWidth)
        {
            throw new InvalidFileException(path, $"textual inversion tensor '{tensor.Name}' has shape {TensorInfo.ShapeText(shape)}; expected [width] or [vectors, width] with 1 to {MaxVectors} vectors of width 1 to {MaxWidth}");
        }
        return ((int)count, (int)width);
    }
}
