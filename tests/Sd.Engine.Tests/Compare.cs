namespace Sd.Engine.Tests;

/// <summary>Error measures of the fixtures README: relative L2 and cosine similarity over whole arrays.</summary>
internal static class Compare
{
    public static double RelativeL2(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(diff / Math.Max(norm, double.Epsilon));
    }

    public static double Cosine(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        double dot = 0, a = 0, b = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            dot += (double)expected[i] * actual[i];
            a += (double)expected[i] * expected[i];
            b += (double)actual[i] * actual[i];
        }
        return dot / Math.Sqrt(a * b);
    }

    public static double MaxAbs(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        double max = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            max = Math.Max(max, Math.Abs((double)actual[i] - expected[i]));
        }
        return max;
    }

    /// <summary>Asserts relative L2 &lt;= <paramref name="tolerance"/> (and no NaN), reporting all three measures.</summary>
    public static string AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        double rel = RelativeL2(expected, actual);
        string report = $"{what}: rel L2 {rel:E2}, max abs {MaxAbs(expected, actual):E2}, cosine {Cosine(expected, actual):F8}";
        Assert.True(rel <= tolerance, report);
        return report;
    }
}
