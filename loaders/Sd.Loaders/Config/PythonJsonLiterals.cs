namespace Sd.Loaders.Config;

/// <summary>
/// Python's json.dump writes float infinities and NaN as bare <c>Infinity</c>, <c>-Infinity</c> and <c>NaN</c>, which
/// JSON does not have and <see cref="System.Text.Json.JsonDocument"/> refuses. diffusers saves DPMSolverMultistep
/// configs with <c>"lambda_min_clipped": -Infinity</c>, so community SD 1.5 folders carry it. This turns each such
/// token outside a string into a string (<c>"-Infinity"</c>); <see cref="JsonConfig"/> reads those strings back as
/// numbers only where a key may hold them, and names the key anywhere else.
/// </summary>
internal static class PythonJsonLiterals
{
    private static readonly byte[][] Literals = ["-Infinity"u8.ToArray(), "Infinity"u8.ToArray(), "NaN"u8.ToArray()];

    /// <summary>The document with every bare literal quoted; the same memory when it has none.</summary>
    public static ReadOnlyMemory<byte> Quote(ReadOnlyMemory<byte> utf8Json)
    {
        ReadOnlySpan<byte> json = utf8Json.Span;
        List<byte>? quoted = null;
        int copied = 0;
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            byte b = json[i];
            if (inString)
            {
                if (b == (byte)'\\')
                {
                    i++; // the escaped byte cannot end the string
                }
                else if (b == (byte)'"')
                {
                    inString = false;
                }
                continue;
            }
            if (b == (byte)'"')
            {
                inString = true;
                continue;
            }
            if (b is not ((byte)'-' or (byte)'I' or (byte)'N') || (i > 0 && IsWordByte(json[i - 1])))
            {
                continue;
            }
            foreach (byte[] literal in Literals)
            {
                int end = i + literal.Length;
                if (json[i..].StartsWith(literal) && (end == json.Length || !IsWordByte(json[end])))
                {
                    quoted ??= new List<byte>(json.Length + 16);
                    quoted.AddRange(json[copied..i]);
                    quoted.Add((byte)'"');
                    quoted.AddRange(literal);
                    quoted.Add((byte)'"');
                    copied = end;
                    i = end - 1;
                    break;
                }
            }
        }
        if (quoted is null)
        {
            return utf8Json;
        }
        quoted.AddRange(json[copied..]);
        return quoted.ToArray();
    }

    /// <summary>The number a quoted literal stands for, or null for any other string.</summary>
    public static double? Value(string text) => text switch
    {
        "-Infinity" => double.NegativeInfinity,
        "Infinity" => double.PositiveInfinity,
        "NaN" => double.NaN,
        _ => null,
    };

    private static bool IsWordByte(byte b) => b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9') or (byte)'_' or (byte)'.';
}
