using Microsoft.Extensions.Logging;

namespace Sd.Cli;

/// <summary>
/// The CLI's ILogger: one plain line per message on stderr (stdout stays for results and progress), at or above a
/// minimum level chosen with --log-level. The engine logs loads (Information), steps (Debug) and dropped prompt
/// tokens (Warning).
/// </summary>
public sealed class StderrLogger(LogLevel minimum, TextWriter? writer = null) : ILogger
{
    private readonly TextWriter _writer = writer ?? Console.Error;

    public static readonly string[] LevelNames = ["trace", "debug", "information", "warning", "error", "none"];

    /// <summary>Parses a --log-level value (case-insensitive); default Warning.</summary>
    public static LogLevel ParseLevel(string? name, string command)
    {
        if (name is null) return LogLevel.Warning;
        int index = Array.FindIndex(LevelNames, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        return index >= 0 ? (LogLevel)index
            : throw new UsageException($"{command}: --log-level must be one of {string.Join(", ", LevelNames)}, got '{name}'");
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string level = logLevel switch
        {
            LogLevel.Warning => "warning",
            LogLevel.Error or LogLevel.Critical => "error",
            _ => "info",
        };
        _writer.WriteLine($"sd: {level}: {formatter(state, exception)}");
    }
}
