using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Lora;

/// <summary>
/// One matrix of a LoRA module's update, read as [<see cref="Rows"/>, <see cref="Columns"/>] (the columns are a
/// weight's in x kh x kw): stored whole (<see cref="Whole"/>), or as a product up [rows, rank] x down [rank, columns],
/// or as a Tucker (CP) product up x (core contracted with down), where core is [rank, rank', kh, kw] and down
/// [rank', in]: update[r, j, k, l] = sum over i, m of up[r, i] core[i, m, k, l] down[m, j] (LyCORIS's LoCon
/// "lora_mid" and LoHa/LoKr "t" tensors; LoHa and LoKr store their up transposed, [rank, rows]).
/// Reference: A1111 extensions-builtin/Lora lyco_helpers (rebuild_conventional, rebuild_cp_decomposition, make_weight_cp).
/// </summary>
public sealed class LoraFactor
{
    private LoraFactor(TensorInfo? whole, TensorInfo? up, TensorInfo? down, TensorInfo? core, bool upTransposed,
        long rows, long columns, long kernelHeight, long kernelWidth, int rank)
    {
        Whole = whole;
        Up = up;
        Down = down;
        Core = core;
        UpTransposed = upTransposed;
        Rows = rows;
        Columns = columns;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
        Rank = rank;
    }

    /// <summary>The matrix as stored, any shape [rows, ...]; null for a product.</summary>
    public TensorInfo? Whole { get; }

    /// <summary>up [rows, rank] (or [rows, rank, 1, 1]); [rank, rows] when <see cref="UpTransposed"/>.</summary>
    public TensorInfo? Up { get; }

    /// <summary>down [rank, columns] or [rank, in, kh, kw]; with a <see cref="Core"/>, [rank', in] (or [rank', in, 1, 1]).</summary>
    public TensorInfo? Down { get; }

    /// <summary>The Tucker core [rank, rank', kh, kw], or null.</summary>
    public TensorInfo? Core { get; }

    public bool UpTransposed { get; }

    public long Rows { get; }

    public long Columns { get; }

    /// <summary>The kernel size the factor states (a 4-D down, core or whole tensor); 0 when it states none.</summary>
    public long KernelHeight { get; }

    public long KernelWidth { get; }

    /// <summary>The product's inner size (up's rank); 0 for a whole matrix.</summary>
    public int Rank { get; }

    /// <summary>The rank A1111 scales by (alpha / rank): down's first size; 0 for a whole matrix.</summary>
    public int DownRank => Down is null ? 0 : (int)Down.Shape[0];

    public bool IsProduct => Whole is null;

    /// <summary>A matrix stored whole: [rows, ...] (a vector is [rows, 1]); <paramref name="matrix"/> asks for exactly 2-D.</summary>
    internal static LoraFactor Stored(string path, string key, TensorInfo whole, bool matrix)
    {
        long[] s = whole.Shape;
        if (s.Length == 0 || s.Length > 4 || (matrix && s.Length != 2) || Array.IndexOf(s, 0L) >= 0)
        {
            throw new InvalidFileException(path,
                $"LoRA tensor '{whole.Name}' has shape {TensorInfo.ShapeText(s)}; expected {(matrix ? "a matrix [rows, columns]" : "[out, ...] with no size 0")} in module '{key}'");
        }
        long columns = whole.ElementCount / s[0];
        return new LoraFactor(whole, null, null, null, false, s[0], columns, s.Length == 4 ? s[2] : 0, s.Length == 4 ? s[3] : 0, 0);
    }

    /// <summary>up x down, or with <paramref name="core"/> the Tucker product; checks that the sizes chain.</summary>
    internal static LoraFactor Product(string path, string key, TensorInfo up, TensorInfo down, TensorInfo? core, bool upTransposed)
    {
        long[] u = up.Shape, d = down.Shape;
        bool upFits = upTransposed ? u.Length == 2 : (u.Length is 2 or 4 && (u.Length == 2 || (u[2] == 1 && u[3] == 1)));
        long rows = upFits ? u[upTransposed ? 1 : 0] : 0, rank = upFits ? u[upTransposed ? 0 : 1] : 0;
        long downRank = d.Length is 2 or 4 ? d[0] : 0, inputs = d.Length is 2 or 4 ? d[1] : 0;
        bool downFits = d.Length is 2 or 4 && downRank is >= 1 and <= LoraFile.MaxRank && inputs >= 1;
        if (core is null)
        {
            downFits = downFits && (d.Length == 2 || (d[2] >= 1 && d[3] >= 1));
            if (!upFits || !downFits || rows < 1 || rank != downRank)
            {
                throw new InvalidFileException(path,
                    $"LoRA module '{key}' has down {Named(key, down)} and up {Named(key, up)}; expected down [rank, in] or [rank, in, kh, kw] and up {(upTransposed ? "[rank, out]" : "[out, rank] or [out, rank, 1, 1]")}, rank in [1, {LoraFile.MaxRank}]");
            }
            return new LoraFactor(null, up, down, null, upTransposed, rows, down.ElementCount / downRank,
                d.Length == 4 ? d[2] : 0, d.Length == 4 ? d[3] : 0, (int)rank);
        }
        long[] c = core.Shape;
        downFits = downFits && (d.Length == 2 || (d[2] == 1 && d[3] == 1));
        bool coreFits = c.Length == 4 && c[0] == rank && c[1] == downRank && c[2] >= 1 && c[3] >= 1;
        if (!upFits || !downFits || rows < 1 || rank is < 1 or > LoraFile.MaxRank || !coreFits)
        {
            throw new InvalidFileException(path,
                $"LoRA module '{key}' has up {Named(key, up)}, core {Named(key, core)} and down {Named(key, down)}; expected up {(upTransposed ? "[rank, out]" : "[out, rank] or [out, rank, 1, 1]")}, core [rank, rank', kh, kw] and down [rank', in] or [rank', in, 1, 1], ranks in [1, {LoraFile.MaxRank}]");
        }
        return new LoraFactor(null, up, down, core, upTransposed, rows, Saturating(inputs, c[2] * c[3]), c[2], c[3], (int)rank);
    }

    /// <summary>a x b, or long.MaxValue where that overflows (sizes from a file's header may be anything).</summary>
    internal static long Saturating(long a, long b) => a == 0 || b <= long.MaxValue / a ? a * b : long.MaxValue;

    /// <summary>A tensor's shape and its name within the module: "[2, 4] (lora_down.weight)".</summary>
    private static string Named(string key, TensorInfo tensor) => TensorInfo.ShapeText(tensor.Shape)
        + $" ({(tensor.Name.StartsWith(key + ".", StringComparison.Ordinal) ? tensor.Name[(key.Length + 1)..] : tensor.Name)})";
}
