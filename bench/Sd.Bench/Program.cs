using BenchmarkDotNet.Running;

namespace Sd.Bench;

/// <summary>
/// BenchmarkDotNet entry: <c>dotnet run -c Release --project bench/Sd.Bench -- --filter '*Widen*'</c>.
/// Results go to bench/RESULTS.md by hand, with the machine line BenchmarkDotNet prints.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
