function init() {
  // Register a WebSocket stream
  routeRegistry.registerStreamRoute("/notifications");

  // Page to display notifications
  routeRegistry.registerRoute(
    "GET",
    "/notifications-demo",
    showNotificationsPage,
  );

  // Endpoint to send a notification
  routeRegistry.registerRoute("POST", "/send-notification", sendNotification);
}

function showNotificationsPage(request) {
  const html = `
    <!DOCTYPE html>
    <html>
    <head>
      <title>Real-Time Notifications</title>
      <style>
        body {
          font-family: Arial, sans-serif;
          max-width: 800px;
          margin: 50px auto;
          padding: 20px;
          background: #f5f5f5;
        }
        h1 {
          color: #333;
        }
        .controls {
          background: white;
          padding: 20px;
          border-radius: 8px;
          margin-bottom: 20px;
          box-shadow: 0 2px 4px rgba(0,0,0,0.1);
        }
        button {
          background: #007bff;
          color: white;
          border: none;
          padding: 10px 20px;
          border-radius: 4px;
          cursor: pointer;
          margin-right: 10px;
        }
        button:hover {
          background: #0056b3;
        }
        #notifications {
          min-height: 200px;
        }
        .notification {
          background: white;
          padding: 15px;
          margin: 10px 0;
          border-radius: 4px;
          border-left: 4px solid #007bff;
          box-shadow: 0 2px 4px rgba(0,0,0,0.1);
          animation: slideIn 0.3s ease-out;
        }
        .notification.info {
          border-left-color: #17a2b8;
        }
        .notification.success {
          border-left-color: #28a745;
        }
        .notification.warning {
          border-left-color: #ffc107;
        }
        .notification.error {
          border-left-color: #dc3545;
        }
        .notification-type {
          font-weight: bold;
          text-transform: uppercase;
          font-size: 0.85em;
          margin-bottom: 5px;
        }
        .notification-time {
          font-size: 0.85em;
          color: #666;
          margin-top: 5px;
        }
        .status {
          padding: 10px;
          background: #d4edda;
          border: 1px solid #c3e6cb;
          border-radius: 4px;
          margin-bottom: 20px;
        }
        @keyframes slideIn {
          from {
            transform: translateX(-100%);
            opacity: 0;
          }
          to {
            transform: translateX(0);
            opacity: 1;
          }
        }
      </style>
    </head>
    <body>
      <h1>üì¨ Real-Time Notifications</h1>
      
      <div id="status" class="status">
        <strong>Status:</strong> <span id="connectionStatus">Connecting...</span>
      </div>
      
      <div class="controls">
        <button onclick="sendTestNotification('info')">Send Info</button>
        <button onclick="sendTestNotification('success')">Send Success</button>
        <button onclick="sendTestNotification('warning')">Send Warning</button>
        <button onclick="sendTestNotification('error')">Send Error</button>
        <button onclick="clearNotifications()">Clear All</button>
      </div>
      
      <div id="notifications"></div>
      
      <script>
        const notificationsContainer = document.getElementById('notifications');
        const statusElement = document.getElementById('connectionStatus');
        
        // Connect to SSE stream
        const eventSource = new EventSource('/notifications');
        
        eventSource.onopen = function() {
          statusElement.textContent = 'Connected ‚úì';
          statusElement.style.color = '#28a745';
        };
        
        eventSource.onerror = function() {
          statusElement.textContent = 'Disconnected ‚úó';
          statusElement.style.color = '#dc3545';
        };
        
        eventSource.onmessage = function(event) {
          const data = JSON.parse(event.data);
          addNotification(data);
        };
        
        function addNotification(data) {
          const div = document.createElement('div');
          div.className = \`notification \${data.type}\`;
          div.innerHTML = \`
            <div class="notification-type">\${data.type}</div>
            <div>\${data.message}</div>
            <div class="notification-time">\${new Date(data.timestamp).toLocaleString()}</div>
          \`;
          
          notificationsContainer.insertBefore(div, notificationsContainer.firstChild);
          
          // Keep only last 10 notifications
          while (notificationsContainer.children.length > 10) {
            notificationsContainer.removeChild(notificationsContainer.lastChild);
          }
        }
        
        function sendTestNotification(type) {
          fetch('/send-notification', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ type: type })
          });
        }
        
        function clearNotifications() {
          notificationsContainer.innerHTML = '';
        }
      </script>
    </body>
    </html>
  `;

  return {
    status: 200,
    headers: { "Content-Type": "text/html" },
    body: html,
  };
}

function sendNotification(request) {
  const data = JSON.parse(request.body || "{}");
  const type = data.type || "info";

  const messages = {
    info: "This is an informational message",
    success: "Operation completed successfully!",
    warning: "Please review this warning",
    error: "An error occurred that needs attention",
  };

  const notification = {
    type: type,
    message: messages[type] || "Test notification",
    timestamp: new Date().toISOString(),
  };

  sendStreamMessage(notification);

  console.log("Notification sent", notification);

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

init();
